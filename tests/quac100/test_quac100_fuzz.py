"""Fuzzing the ioctl path: the test device answers garbage (random result codes, random
sig_actual, random bytes in every output buffer, random errnos) and the backend must never
crash and never report success with data it can check to be wrong.

What the host checks on every reply (and so what a success guarantees): the result code is 0,
sig_actual is exactly the FIPS 204 size, outputs were written, a key pair is consistent (ek
inside dk with H(ek); rho and tr of an ML-DSA pair) and, for seeded keygen, derived from the
seed. What it cannot check without redoing the work: a shared secret, a signature's validity
(the signer has no public key), a verify verdict. Those are counted here, not asserted.
"""

from __future__ import annotations

import os
import random

import pytest
from quac100_simdev import DEVICE_ENV

from quantavirt.errors import QVError
from quantavirt.pqc import KEM, Signature

ROUNDS = 250  # per algorithm and seed; each round runs every operation once


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kem_name, sig_name", [("ML-KEM-512", "ML-DSA-44"),
                                                ("ML-KEM-768", "ML-DSA-65"),
                                                ("ML-KEM-1024", "ML-DSA-87")])
def test_garbage_replies(start_sim, monkeypatch: pytest.MonkeyPatch, seed: int,  # type: ignore[no-untyped-def]
                         kem_name: str, sig_name: str) -> None:
    dev = start_sim(f"garbage={seed}")
    monkeypatch.setenv(DEVICE_ENV, dev.path)
    rng = random.Random(seed)
    kem_sw, sig_sw = KEM(kem_name, backend="software"), Signature(sig_name, backend="software")
    kem, sig = KEM(kem_name, backend="quac100"), Signature(sig_name, backend="quac100")
    pk, sk = kem_sw.keygen()
    ct, ss = kem_sw.encaps(pk)
    spk, ssk = sig_sw.keygen()
    good_sig = sig_sw.sign(ssk, b"fuzz")
    outcomes: dict[str, int] = {}
    undetectable = 0

    def attempt(name: str, op):  # type: ignore[no-untyped-def]
        try:
            value = op()
        except QVError as e:
            assert e.name.startswith("QUAC100_ERR_"), f"{name}: {e}"
            assert e.name != "QUAC100_ERR_GONE", f"{name}: the garbage modes keep the device"
            outcomes[e.name] = outcomes.get(e.name, 0) + 1
            return None
        outcomes["ok"] = outcomes.get("ok", 0) + 1
        return value

    for _ in range(ROUNDS):
        keys = attempt("keygen", kem.keygen)
        if keys is not None:  # a success is a working key pair
            c, s = kem_sw.encaps(keys[0])
            assert kem_sw.decaps(keys[1], c) == s
        d_z = rng.randbytes(64)
        keys = attempt("keygen_seed", lambda: kem.keygen(seed=d_z))  # noqa: B023
        if keys is not None:
            assert keys == kem_sw.keygen(seed=d_z)
        got = attempt("encaps", lambda: kem.encaps(pk))
        if got is not None:
            assert len(got[0]) == kem.ciphertext_size and len(got[1]) == 32
            undetectable += kem_sw.decaps(sk, got[0]) != got[1]
        got = attempt("decaps", lambda: kem.decaps(sk, ct))
        if got is not None:
            assert len(got) == 32
            undetectable += got != ss
        xi = rng.randbytes(32)
        keys = attempt("sig_keygen_seed", lambda: sig.keygen(seed=xi))  # noqa: B023
        if keys is not None:
            assert keys == sig_sw.keygen(seed=xi)
        keys = attempt("sig_keygen", sig.keygen)
        if keys is not None:
            assert sig_sw.verify(keys[0], b"m", sig_sw.sign(keys[1], b"m"))
        got = attempt("sign", lambda: sig.sign(ssk, b"fuzz", deterministic=rng.random() < 0.5))
        if got is not None:
            assert len(got) == sig.signature_size
            undetectable += not sig_sw.verify(spk, b"fuzz", got)
        got = attempt("verify", lambda: sig.verify(spk, b"fuzz", good_sig))
        if got is not None:
            assert isinstance(got, bool)
            undetectable += not got
    # the garbage really was garbage: every kind of failure showed up, and successes too
    assert outcomes.get("ok", 0) > ROUNDS
    for code in ("QUAC100_ERR_REPLY", "QUAC100_ERR_DEVICE", "QUAC100_ERR_IOCTL"):
        assert outcomes.get(code, 0) > 0, outcomes
    assert undetectable > 0  # the documented limit exists; it is counted, not hidden
    assert dev.alive()


def test_random_bytes_in_the_caller_buffers_do_not_leak_out(start_sim,  # type: ignore[no-untyped-def]
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    """A failed operation never hands back what the card scribbled into the buffers."""
    dev = start_sim("garbage=7")
    monkeypatch.setenv(DEVICE_ENV, dev.path)
    kem = KEM("ML-KEM-768", backend="quac100")
    failures = 0
    for _ in range(200):
        try:
            pks, sks = kem.keygen_batch(2)
        except QVError as e:
            failures += 1
            assert e.path is not None and e.path.startswith("[")
            continue
        for pk, sk in zip(pks, sks, strict=True):  # a batch success: every pair works
            c, s = KEM("ML-KEM-768", backend="software").encaps(bytes(pk))
            assert KEM("ML-KEM-768", backend="software").decaps(bytes(sk), c) == s
    assert failures > 0
    assert os.path.exists(dev.path)
