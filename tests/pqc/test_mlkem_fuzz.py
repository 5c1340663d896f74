"""Fuzzing ML-KEM with hypothesis: decaps of arbitrary ciphertexts and secret keys, encaps of
arbitrary public keys. Never a crash; every answer is the one FIPS 203 prescribes."""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantavirt.errors import QVError
from quantavirt.pqc import KEM

KEMS = {name: KEM(name) for name in ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024")}
KEYS = {name: kem.keygen(seed=bytes(range(64))) for name, kem in KEMS.items()}
K = {"ML-KEM-512": 2, "ML-KEM-768": 3, "ML-KEM-1024": 4}
names = st.sampled_from(sorted(KEMS))
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.data_too_large,
    ],
)


@FUZZ
@given(name=names, data=st.data())
def test_decaps_random_ciphertext(name: str, data: st.DataObject) -> None:
    kem = KEMS[name]
    _, sk = KEYS[name]
    ct = data.draw(st.binary(min_size=kem.ciphertext_size, max_size=kem.ciphertext_size))
    # A random ciphertext is (with overwhelming probability) not a valid encryption, so the
    # answer is the implicit-rejection key.
    assert kem.decaps(sk, ct) == hashlib.shake_256(sk[-32:] + ct).digest(32)


@FUZZ
@given(name=names, ct=st.binary(max_size=1700))
def test_decaps_any_length(name: str, ct: bytes) -> None:
    kem = KEMS[name]
    _, sk = KEYS[name]
    if len(ct) == kem.ciphertext_size:
        assert len(kem.decaps(sk, ct)) == 32
    else:
        try:
            kem.decaps(sk, ct)
        except QVError as e:
            assert e.name == "PQC_ERR_SIZE"
        else:
            raise AssertionError("wrong-length ciphertext accepted")


@FUZZ
@given(name=names, data=st.data())
def test_decaps_random_secret_key(name: str, data: st.DataObject) -> None:
    """A random dk fails the hash check; one with a valid H(ek) over random bytes (including
    12-bit values >= q in dk_pke and ek) still decapsulates to 32 bytes, never crashes."""
    kem = KEMS[name]
    k = K[name]
    sk = data.draw(st.binary(min_size=kem.secret_key_size, max_size=kem.secret_key_size))
    ct = data.draw(st.binary(min_size=kem.ciphertext_size, max_size=kem.ciphertext_size))
    try:
        kem.decaps(sk, ct)
    except QVError as e:
        assert e.name == "PQC_ERR_KEY"
    else:
        raise AssertionError("random secret key passed the hash check")
    ek = sk[384 * k: 768 * k + 32]
    fixed = sk[: 768 * k + 32] + hashlib.sha3_256(ek).digest() + sk[768 * k + 64:]
    out = kem.decaps(fixed, ct)
    assert len(out) == 32


def modulus_ok(pk: bytes, k: int) -> bool:
    """The FIPS 203 modulus check, written independently of the C code."""
    for i in range(0, 384 * k, 3):
        a = pk[i] | (pk[i + 1] & 0x0F) << 8
        b = pk[i + 1] >> 4 | pk[i + 2] << 4
        if a >= 3329 or b >= 3329:
            return False
    return True


@FUZZ
@given(name=names, data=st.data())
def test_encaps_random_public_key(name: str, data: st.DataObject) -> None:
    kem = KEMS[name]
    k = K[name]
    # Bytes whose 12-bit values mostly stay below q, so both outcomes are exercised.
    low = data.draw(st.booleans())
    n = kem.public_key_size
    raw = data.draw(st.binary(min_size=n, max_size=n))
    pk = bytes(b & 0x7F if (low and i % 3 != 0) else b for i, b in enumerate(raw))
    expected_ok = modulus_ok(pk, k)
    try:
        ct, ss = kem.encaps(pk)
    except QVError as e:
        assert e.name == "PQC_ERR_KEY" and not expected_ok
    else:
        assert expected_ok and len(ct) == kem.ciphertext_size and len(ss) == 32
