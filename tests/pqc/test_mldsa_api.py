"""The public contract of quantavirt.pqc.Signature: names, backends, sizes, seeds,
deterministic and hedged signing, batches, and error codes."""

from __future__ import annotations

import numpy as np
import pytest

import quantavirt.pqc
from quantavirt.errors import QVError
from quantavirt.pqc import Signature

SIZES = {  # FIPS 204 final (pk, sk, sig); not the round-3 Dilithium sizes
    "ML-DSA-44": (1312, 2560, 2420),
    "ML-DSA-65": (1952, 4032, 3309),
    "ML-DSA-87": (2592, 4896, 4627),
}


@pytest.mark.parametrize("algorithm", list(SIZES))
def test_sizes_and_roundtrip(algorithm: str) -> None:
    sig = quantavirt.pqc.Signature(algorithm, backend="auto")
    assert (sig.public_key_size, sig.secret_key_size, sig.signature_size) == SIZES[algorithm]
    assert sig.seed_size == 32
    assert sig.backend == "software"
    pk, sk = sig.keygen()
    assert isinstance(pk, bytes) and isinstance(sk, bytes)
    assert (len(pk), len(sk)) == SIZES[algorithm][:2]
    s = sig.sign(sk, b"hello", ctx=b"ctx")
    assert isinstance(s, bytes) and len(s) == SIZES[algorithm][2]
    assert sig.verify(pk, b"hello", s, ctx=b"ctx") is True
    assert sig.verify(pk, b"hello", s) is False
    # bytearray and memoryview work too
    assert sig.verify(bytearray(pk), memoryview(b"hello"), bytearray(s), ctx=bytearray(b"ctx"))


def test_seeded_keygen_is_deterministic_and_random_keygen_is_not() -> None:
    sig = Signature("ML-DSA-65", backend="software")
    assert sig.keygen(seed=bytes(32)) == sig.keygen(seed=bytes(32))
    assert sig.keygen(seed=bytes(32)) != sig.keygen(seed=bytes(31) + b"\x01")
    assert sig.keygen()[0] != sig.keygen()[0]


def test_parameter_sets_are_domain_separated() -> None:
    """Final FIPS 204 appends k and l to xi: the same seed gives unrelated rho per set."""
    rhos = {Signature(a).keygen(seed=bytes(32))[0][:32] for a in SIZES}
    assert len(rhos) == 3


def test_deterministic_and_hedged_signing() -> None:
    sig = Signature("ML-DSA-44")
    pk, sk = sig.keygen(seed=b"\x01" * 32)
    d1 = sig.sign(sk, b"m", deterministic=True)
    assert d1 == sig.sign(sk, b"m", deterministic=True)
    assert d1 == sig.sign_with_randomness(sk, b"m", bytes(32))
    h1, h2 = sig.sign(sk, b"m"), sig.sign(sk, b"m")
    assert h1 != h2 and h1 != d1
    assert sig.verify(pk, b"m", h1) and sig.verify(pk, b"m", h2)
    r = bytes(range(32))
    assert sig.sign_with_randomness(sk, b"m", r) == sig.sign_with_randomness(sk, b"m", r)
    assert sig.sign(sk, b"", deterministic=True) != d1
    assert sig.verify(pk, b"", sig.sign(sk, b""))


def test_batches_match_single_operations() -> None:
    sig = Signature("ML-DSA-65")
    n, m = 8, 33
    seeds = np.arange(n * 32, dtype=np.uint32).astype(np.uint8).reshape(n, 32)
    pks, sks = sig.keygen_batch(seeds=seeds)
    assert pks.shape == (n, sig.public_key_size) and sks.shape == (n, sig.secret_key_size)
    assert pks.dtype == np.uint8
    msgs = (np.arange(n * m) * 7 % 251).astype(np.uint8).reshape(n, m)
    sigs = sig.sign_batch(sks, msgs, ctx=b"c", deterministic=True)
    assert sigs.shape == (n, sig.signature_size)
    for i in range(n):
        pk, sk = sig.keygen(seed=seeds[i].tobytes())
        assert pks[i].tobytes() == pk and sks[i].tobytes() == sk
        assert sigs[i].tobytes() == sig.sign(sk, msgs[i].tobytes(), ctx=b"c",
                                              deterministic=True)
    ok = sig.verify_batch(pks, msgs, sigs, ctx=b"c")
    assert ok.dtype == bool and ok.all()
    bad = sigs.copy()
    bad[3, 100] ^= 1
    assert list(sig.verify_batch(pks, msgs, bad, ctx=b"c")) == [i != 3 for i in range(n)]
    rand_pks, rand_sks = sig.keygen_batch(3)
    assert rand_pks.shape == (3, sig.public_key_size)
    assert len({row.tobytes() for row in rand_pks}) == 3
    empty = sig.sign_batch(np.zeros((0, sig.secret_key_size), np.uint8),
                           np.zeros((0, 4), np.uint8))
    assert empty.shape == (0, sig.signature_size)


def test_batch_shape_errors() -> None:
    sig = Signature("ML-DSA-44")
    pks, sks = sig.keygen_batch(2)
    msgs = np.zeros((2, 5), np.uint8)
    cases = [
        lambda: sig.sign_batch(sks[:, :-1], msgs),
        lambda: sig.sign_batch(sks, np.zeros((3, 5), np.uint8)),
        lambda: sig.sign_batch(sks[0], msgs),
        lambda: sig.verify_batch(pks, msgs, np.zeros((2, 10), np.uint8)),
        lambda: sig.verify_batch(pks, msgs, np.zeros((1, sig.signature_size), np.uint8)),
        lambda: sig.keygen_batch(seeds=np.zeros((2, 31), np.uint8)),
    ]
    for call in cases:
        with pytest.raises(QVError) as info:
            call()
        assert info.value.name == "PQC_ERR_SIZE"
    with pytest.raises(QVError) as info:
        sig.sign_batch(sks, msgs, ctx=bytes(256))
    assert info.value.name == "PQC_ERR_CONTEXT"
    # Arrays of another dtype or of non-bytes are refused, never cast.
    for bad in (sks.astype(np.int64), [[300] * sig.secret_key_size] * 2, "text"):
        with pytest.raises(QVError) as info:
            sig.sign_batch(bad, msgs)
        assert info.value.name == "QV_ERR_INVAL"


def test_unknown_algorithm_and_backends() -> None:
    for name in ("ML-DSA-66", "Dilithium3", "ml-dsa-65", ""):
        with pytest.raises(QVError) as info:
            Signature(name)
        assert info.value.name == "PQC_ERR_ALGORITHM"
        assert info.value.subsystem == "pqc"
    for backend in ("quac100", "liboqs", "gpu"):
        with pytest.raises(QVError) as info:
            Signature("ML-DSA-65", backend=backend)
        assert info.value.name == "PQC_ERR_BACKEND"
    assert Signature("ML-DSA-87", backend="software").backend == "software"


def test_wrong_types_are_qverrors() -> None:
    sig = Signature("ML-DSA-44")
    pk, sk = sig.keygen()
    for call in (lambda: sig.sign(sk, "text"),  # type: ignore[arg-type]
                 lambda: sig.sign(sk, b"m", ctx=3),  # type: ignore[arg-type]
                 lambda: sig.verify(pk, b"m", None)):  # type: ignore[arg-type]
        with pytest.raises(QVError) as info:
            call()
        assert info.value.name == "QV_ERR_INVAL"


def test_code_paths_agree() -> None:
    """Every code path the CPU offers (portable, AVX2, AVX2 with AVX-512 Keccak) gives
    identical keys and deterministic signatures."""
    from quantavirt._ffi import c_string, lib

    names = {lib.QV_MLDSA_PATH_PORTABLE: "portable", lib.QV_MLDSA_PATH_AVX2: "avx2",
             lib.QV_MLDSA_PATH_AVX512: "avx2+avx512"}
    best = c_string(lib.qv_mldsa_code_path())
    assert best in names.values()
    results = {}
    try:
        for level, name in names.items():
            lib.qv_mldsa_set_path_limit(level)
            if c_string(lib.qv_mldsa_code_path()) != name:
                continue  # the CPU lacks this path
            out = []
            for algorithm in SIZES:
                sig = Signature(algorithm)
                for i in range(20):
                    pk, sk = sig.keygen(seed=bytes([i]) * 32)
                    out.append((pk, sk, sig.sign(sk, bytes([i]) * i, ctx=b"p",
                                                 deterministic=True)))
            results[name] = out
    finally:
        lib.qv_mldsa_set_path_limit(-1)
    assert c_string(lib.qv_mldsa_code_path()) == best
    assert "portable" in results and best in results
    first = results["portable"]
    for name, out in results.items():
        assert out == first, f"{name} path differs from portable"


def test_concurrent_use_from_threads() -> None:
    """The native calls release the GIL: signing and verifying from several threads at once
    gives the same results as doing it in sequence."""
    from concurrent.futures import ThreadPoolExecutor

    sig = Signature("ML-DSA-65")
    keys = [sig.keygen(seed=bytes([i]) * 32) for i in range(16)]

    def work(i: int) -> tuple[bytes, bool]:
        pk, sk = keys[i % len(keys)]
        msg = i.to_bytes(4, "little") * 8
        s = sig.sign(sk, msg, ctx=b"t", deterministic=True)
        return s, sig.verify(pk, msg, s, ctx=b"t")

    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(work, range(96)))
    assert parallel == [work(i) for i in range(96)]
    assert all(ok for _, ok in parallel)
