"""The ML-KEM Python contract and the FIPS 203 input checks: sizes, algorithm and backend
errors, the encapsulation-key modulus check, the decapsulation-key hash check, wrong lengths,
implicit rejection and the batch variants."""

from __future__ import annotations

import glob
import hashlib
import os
import random

import numpy as np
import pytest

from quantavirt._ffi import ffi, lib
from quantavirt.errors import QVError, code_of
from quantavirt.pqc import KEM

NAMES = ["ML-KEM-512", "ML-KEM-768", "ML-KEM-1024"]
SIZES = {  # FIPS 203 table 3: ek, dk, ct; k; du
    "ML-KEM-512": (800, 1632, 768, 2),
    "ML-KEM-768": (1184, 2400, 1088, 3),
    "ML-KEM-1024": (1568, 3168, 1568, 4),
}


def raises_code(name: str) -> pytest.RaisesContext[QVError]:
    return pytest.raises(QVError, match=rf"^{name} ")


@pytest.mark.parametrize("name", NAMES)
def test_sizes_and_roundtrip(name: str) -> None:
    kem = KEM(name, backend="auto")
    ek, dk, ct_size, _ = SIZES[name]
    assert (kem.public_key_size, kem.secret_key_size) == (ek, dk)
    assert (kem.ciphertext_size, kem.shared_secret_size) == (ct_size, 32)
    assert kem.backend == "software" and kem.code_path in ("portable", "avx2", "avx512vl", "avx512")
    pk, sk = kem.keygen()
    assert isinstance(pk, bytes) and isinstance(sk, bytes)
    assert (len(pk), len(sk)) == (ek, dk)
    ct, ss = kem.encaps(pk)
    assert isinstance(ct, bytes) and (len(ct), len(ss)) == (ct_size, 32)
    assert kem.decaps(sk, ct) == ss
    # Layout of dk: dk_pke || ek || H(ek) || z.
    k = SIZES[name][3]
    assert sk[384 * k: 768 * k + 32] == pk
    assert sk[768 * k + 32: 768 * k + 64] == hashlib.sha3_256(pk).digest()
    # Fresh randomness every time.
    assert kem.keygen()[0] != pk
    assert kem.encaps(pk) != (ct, ss)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_keygen_and_derandomized_encaps_are_deterministic(name: str) -> None:
    kem = KEM(name, backend="software")
    seed = os.urandom(64)
    assert kem.keygen(seed=seed) == kem.keygen(seed=bytearray(seed))
    pk, sk = kem.keygen(seed=seed)
    assert sk.endswith(seed[32:])  # z is stored last
    m = os.urandom(32)
    assert kem.encaps(pk, m=m) == kem.encaps(pk, m=memoryview(m))
    ct, ss = kem.encaps(pk, m=m)
    assert kem.decaps(sk, ct) == ss


@pytest.mark.parametrize("bad", ["ML-KEM-256", "Kyber768", "ml-kem-768", "", "ML-DSA-65"])
def test_unknown_algorithm(bad: str) -> None:
    with raises_code("PQC_ERR_ALGORITHM"):
        KEM(bad)


def test_backends() -> None:
    assert KEM("ML-KEM-768", backend="software").backend == "software"
    if not glob.glob("/dev/quac100_*"):
        with pytest.raises(QVError, match="no QUAC 100 card") as e:
            KEM("ML-KEM-768", backend="quac100")
        assert e.value.name == "PQC_ERR_BACKEND"
    with raises_code("PQC_ERR_BACKEND"):
        KEM("ML-KEM-768", backend="liboqs")  # absent here, or not wired up yet
    with raises_code("PQC_ERR_BACKEND"):
        KEM("ML-KEM-768", backend="gpu")


def set_coefficient(pk: bytes, index: int, value: int) -> bytes:
    """pk with its index-th 12-bit packed value (ByteEncode12 order) replaced."""
    b = bytearray(pk)
    off = 3 * (index // 2)
    if index % 2 == 0:
        b[off] = value & 0xFF
        b[off + 1] = (b[off + 1] & 0xF0) | (value >> 8)
    else:
        b[off + 1] = (b[off + 1] & 0x0F) | ((value & 0x0F) << 4)
        b[off + 2] = value >> 4
    return bytes(b)


@pytest.mark.parametrize("name", NAMES)
def test_modulus_check(name: str) -> None:
    kem = KEM(name)
    pk, _ = kem.keygen()
    k = SIZES[name][3]
    positions = [0, 1, 255, 256, 256 * k - 1] + random.sample(range(256 * k), 20)
    for index in positions:
        for value in (3329, 3330, 4095):
            bad = set_coefficient(pk, index, value)
            with raises_code("PQC_ERR_KEY"):
                kem.encaps(bad)
            with raises_code("PQC_ERR_KEY"):
                kem.encaps_batch(np.frombuffer(bad, dtype=np.uint8).reshape(1, -1))
        # q - 1 is a valid coefficient: the check accepts it.
        ct, ss = kem.encaps(set_coefficient(pk, index, 3328))
        assert len(ct) == kem.ciphertext_size
    # rho (the last 32 bytes) is not range-checked: any bytes are valid there.
    kem.encaps(pk[:-32] + b"\xff" * 32)
    assert lib.qv_mlkem_check_public_key(int(name[7:]), ffi.from_buffer(pk), len(pk)) == 0


@pytest.mark.parametrize("name", NAMES)
def test_secret_key_hash_check(name: str) -> None:
    kem = KEM(name)
    pk, sk = kem.keygen()
    ct, ss = kem.encaps(pk)
    k = SIZES[name][3]
    # A flipped bit in the stored H(ek) or in the embedded ek breaks the hash check.
    for pos in (768 * k + 32, 768 * k + 63, 384 * k, 768 * k + 31, 384 * k + 100):
        bad = bytearray(sk)
        bad[pos] ^= 0x01
        with raises_code("PQC_ERR_KEY"):
            kem.decaps(bytes(bad), ct)
        with raises_code("PQC_ERR_KEY") as e:
            kem.decaps_batch(np.array([list(sk), list(bad)], dtype=np.uint8),
                             np.array([list(ct)] * 2, dtype=np.uint8))
        assert e.value.path == "sks[1]"
    # dk_pke and z are not covered by the check: a change there is no error, but the
    # re-encryption fails and implicit rejection answers J(z || c).
    bad = bytearray(sk)
    bad[0] ^= 0x01
    out = kem.decaps(bytes(bad), ct)
    assert out != ss and out == hashlib.shake_256(sk[-32:] + ct).digest(32)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_lengths(name: str) -> None:
    kem = KEM(name)
    pk, sk = kem.keygen()
    ct, _ = kem.encaps(pk)
    for delta in (-1, 1):
        with raises_code("PQC_ERR_SIZE"):
            kem.encaps(pk[:delta] if delta < 0 else pk + b"\0")
        with raises_code("PQC_ERR_SIZE"):
            kem.decaps(sk[:delta] if delta < 0 else sk + b"\0", ct)
        with raises_code("PQC_ERR_SIZE"):
            kem.decaps(sk, ct[:delta] if delta < 0 else ct + b"\0")
    with raises_code("PQC_ERR_SIZE"):
        kem.keygen(seed=b"\0" * 63)
    with raises_code("PQC_ERR_SIZE"):
        kem.keygen(seed=b"\0" * 65)
    with raises_code("PQC_ERR_SIZE"):
        kem.encaps(pk, m=b"\0" * 31)
    with raises_code("PQC_ERR_SIZE"):
        kem.encaps(b"")
    with raises_code("QV_ERR_INVAL"):
        kem.encaps("not bytes")  # type: ignore[arg-type]
    with raises_code("QV_ERR_INVAL"):
        kem.decaps(sk, None)  # type: ignore[arg-type]
    # Another parameter set's key is a size error, not a crash.
    other = KEM("ML-KEM-768" if name != "ML-KEM-768" else "ML-KEM-1024")
    other_pk, other_sk = other.keygen()
    with raises_code("PQC_ERR_SIZE"):
        kem.encaps(other_pk)
    with raises_code("PQC_ERR_SIZE"):
        kem.decaps(other_sk, ct)


def test_c_entry_points_reject_bad_arguments() -> None:
    size = ffi.new("size_t *")
    assert lib.qv_mlkem_sizes(768, size, ffi.NULL, ffi.NULL) == 0 and size[0] == 1184
    assert lib.qv_mlkem_sizes(769, size, ffi.NULL, ffi.NULL) == code_of("PQC_ERR_ALGORITHM")
    buf = ffi.new("uint8_t[4000]")
    assert lib.qv_mlkem_keygen(768, ffi.NULL, 1184, buf, 2400) == code_of("QV_ERR_INVAL")
    assert lib.qv_mlkem_keygen(768, buf, 1183, buf + 1184, 2400) == code_of("PQC_ERR_SIZE")
    assert lib.qv_mlkem_encaps(768, ffi.NULL, 1184, buf, 1088, buf, 32) == code_of("QV_ERR_INVAL")
    assert lib.qv_mlkem_decaps(512, ffi.NULL, 1632, buf, 768, buf, 32) == code_of("QV_ERR_INVAL")
    assert lib.qv_mlkem_decaps(0, buf, 1632, buf, 768, buf, 32) == code_of("PQC_ERR_ALGORITHM")
    assert lib.qv_mlkem_encaps_batch(768, 0, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL) == 0


@pytest.mark.parametrize("name", NAMES)
def test_implicit_rejection(name: str) -> None:
    """Every single-bit change of the ciphertext gives J(z || c'), recomputed with hashlib."""
    kem = KEM(name)
    pk, sk = kem.keygen()
    ct, ss = kem.encaps(pk)
    z = sk[-32:]
    for bit in [0, 7, 8 * len(ct) - 1] + random.sample(range(8 * len(ct)), 40):
        bad = bytearray(ct)
        bad[bit // 8] ^= 1 << (bit % 8)
        out = kem.decaps(sk, bytes(bad))
        assert out != ss
        assert out == hashlib.shake_256(z + bytes(bad)).digest(32)
    assert kem.decaps(sk, ct) == ss


@pytest.mark.parametrize("name", NAMES)
def test_batches(name: str) -> None:
    kem = KEM(name)
    n = 33
    pks, sks = kem.keygen_batch(n)
    assert pks.dtype == np.uint8 and pks.shape == (n, kem.public_key_size)
    assert sks.shape == (n, kem.secret_key_size)
    cts, sss = kem.encaps_batch(pks)
    assert cts.shape == (n, kem.ciphertext_size) and sss.shape == (n, 32)
    assert np.array_equal(kem.decaps_batch(sks, cts), sss)
    for i in (0, n // 2, n - 1):  # rows agree with the single-operation API
        assert kem.decaps(sks[i].tobytes(), cts[i].tobytes()) == sss[i].tobytes()
    # Non-contiguous input (every second row) works too.
    assert np.array_equal(kem.decaps_batch(sks[::2], cts[::2]), sss[::2])
    # Empty batches.
    e_pks, e_sks = kem.keygen_batch(0)
    assert e_pks.shape == (0, kem.public_key_size)
    assert kem.encaps_batch(e_pks)[0].shape == (0, kem.ciphertext_size)
    # One bad key stops the batch and names its row.
    bad = pks.copy()
    bad[5, :2] = 0xFF
    with raises_code("PQC_ERR_KEY") as e:
        kem.encaps_batch(bad)
    assert e.value.path == "pks[5]"
    with raises_code("PQC_ERR_SIZE"):
        kem.encaps_batch(pks[:, :-1])
    with raises_code("PQC_ERR_SIZE"):
        kem.encaps_batch(pks.astype(np.int16))
    with raises_code("PQC_ERR_SIZE"):
        kem.decaps_batch(sks, cts[:-1])
    with raises_code("QV_ERR_INVAL"):
        kem.encaps_batch([list(pks[0])])  # type: ignore[arg-type]
    with raises_code("QV_ERR_INVAL"):
        kem.keygen_batch(-1)
