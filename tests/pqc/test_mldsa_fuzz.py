"""Hypothesis fuzzing of ML-DSA with arbitrary bytes: verify always returns a bool (or a
documented QVError for a wrong-size key or an oversized context), never crashes; signing
with garbage secret keys returns a signature or a QVError."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantavirt.errors import QVError
from quantavirt.pqc import Signature

SIGS = {name: Signature(name) for name in ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87")}
KEYS = {name: s.keygen(seed=bytes([7]) * 32) for name, s in SIGS.items()}
algorithms = st.sampled_from(sorted(SIGS))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(algorithm=algorithms, data=st.data(), msg=st.binary(max_size=512),
       ctx=st.binary(max_size=300))
def test_verify_random_signatures(algorithm: str, data: st.DataObject, msg: bytes,
                                  ctx: bytes) -> None:
    sig = SIGS[algorithm]
    pk, _ = KEYS[algorithm]
    # Exact-length random signatures exercise the decoder fully; others the length check.
    length = data.draw(st.sampled_from([sig.signature_size, sig.signature_size - 1, 0, 17]))
    blob = data.draw(st.binary(min_size=length, max_size=length))
    if len(ctx) > 255:
        try:
            sig.verify(pk, msg, blob, ctx=ctx)
        except QVError as exc:
            assert exc.name == "PQC_ERR_CONTEXT"
        else:
            raise AssertionError("oversized context accepted")
        return
    assert sig.verify(pk, msg, blob, ctx=ctx) is False


@settings(max_examples=200, deadline=None)
@given(algorithm=algorithms, data=st.data())
def test_verify_random_public_keys_and_hint_tails(algorithm: str, data: st.DataObject) -> None:
    """Random public keys, and valid signatures with a random hint section (the part with the
    most structure to get wrong)."""
    sig = SIGS[algorithm]
    pk, sk = KEYS[algorithm]
    s = sig.sign(sk, b"fuzz", deterministic=True)
    random_pk = data.draw(st.binary(min_size=sig.public_key_size,
                                    max_size=sig.public_key_size))
    assert sig.verify(random_pk, b"fuzz", s) in (False, random_pk == pk)
    k = {"ML-DSA-44": 4, "ML-DSA-65": 6, "ML-DSA-87": 8}[algorithm]
    omega = {"ML-DSA-44": 80, "ML-DSA-65": 55, "ML-DSA-87": 75}[algorithm]
    tail = data.draw(st.binary(min_size=omega + k, max_size=omega + k))
    forged = s[: len(s) - (omega + k)] + tail
    assert sig.verify(pk, b"fuzz", forged) == (forged == s)


@settings(max_examples=25, deadline=None)
@given(algorithm=algorithms, data=st.data())
def test_sign_with_garbage_secret_key_never_crashes(algorithm: str, data: st.DataObject) -> None:
    sig = SIGS[algorithm]
    sk = data.draw(st.binary(min_size=sig.secret_key_size, max_size=sig.secret_key_size))
    try:
        out = sig.sign(sk, b"m", deterministic=True)
    except QVError as exc:  # the signing loop gives up after its FIPS 204 attempt limit
        assert exc.name == "PQC_ERR_INTERNAL"
    else:
        assert len(out) == sig.signature_size


@settings(max_examples=50, deadline=None)
@given(algorithm=algorithms, n=st.integers(0, 4), m=st.integers(0, 40), data=st.data())
def test_verify_batch_random_bytes(algorithm: str, n: int, m: int, data: st.DataObject) -> None:
    sig = SIGS[algorithm]
    raw = data.draw(st.binary(min_size=n * (sig.public_key_size + sig.signature_size + m),
                              max_size=n * (sig.public_key_size + sig.signature_size + m)))
    buf = np.frombuffer(raw, dtype=np.uint8)
    pks = buf[: n * sig.public_key_size].reshape(n, sig.public_key_size)
    rest = buf[n * sig.public_key_size:]
    sigs = rest[: n * sig.signature_size].reshape(n, sig.signature_size)
    msgs = rest[n * sig.signature_size:].reshape(n, m)
    ok = sig.verify_batch(pks, msgs, sigs)
    assert ok.shape == (n,) and ok.dtype == bool and not ok.any()
