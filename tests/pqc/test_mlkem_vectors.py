"""ML-KEM against the NIST known-answer vectors (all 1000 per parameter set) from the
`cryptography-vectors` package: keys from (d, z), deterministic encapsulation from m,
decapsulation, and implicit rejection of the modified ciphertext ct_n. ML-KEM-512 depends on
these most: OpenSSL through `cryptography` does not offer it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import cryptography_vectors
import numpy as np
import pytest

from quantavirt._ffi import lib
from quantavirt.errors import code_of
from quantavirt.pqc import KEM

PATHS = ["portable", "avx2", "avx512vl", "avx512"]


@pytest.fixture(params=PATHS)
def code_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test on each C code path this CPU has; back to the CPUID choice afterwards."""
    rc = lib.qv_mlkem_select_code_path(request.param.encode())
    try:
        if rc == code_of("QV_ERR_NOTSUP"):
            pytest.skip(f"this CPU lacks the {request.param} path")
        assert rc == 0
        assert KEM("ML-KEM-768").code_path == request.param
        yield request.param
    finally:
        lib.qv_mlkem_select_code_path(b"auto")


@dataclass(frozen=True)
class KemVector:
    count: int
    z: bytes
    d: bytes
    msg: bytes
    pk: bytes
    sk: bytes
    ct: bytes
    ss: bytes
    ct_n: bytes  # a ciphertext that fails re-encryption
    ss_n: bytes  # its implicit-rejection key J(z || ct_n)


FIELDS = ("count", "z", "d", "msg", "pk", "sk", "ct", "ss", "ct_n", "ss_n")


@cache
def load_kem_vectors(level: int) -> list[KemVector]:
    path = f"asymmetric/MLKEM/kat_MLKEM_{level}.rsp"
    with cryptography_vectors.open_vector_file(path, "r") as f:
        text = f.read()
    # Entries are runs of "key = hex" lines, each starting with "count = N".
    entries: list[dict[str, str]] = []
    for line in text.splitlines():
        if " = " not in line:
            continue
        key, value = (part.strip() for part in line.split(" = ", 1))
        if key == "count":
            entries.append({})
        if entries:
            entries[-1][key] = value
    vectors: list[KemVector] = []
    for entry in entries:
        missing = [f for f in FIELDS if f not in entry]
        if missing:
            raise ValueError(f"{path}: vector {entry['count']} lacks {missing}")
        vectors.append(KemVector(
            int(entry["count"]),
            *(bytes.fromhex(entry[f]) for f in FIELDS[1:]),
        ))
    return vectors


SIZES = {512: (800, 1632, 768), 768: (1184, 2400, 1088), 1024: (1568, 3168, 1568)}


@pytest.mark.parametrize("level", [512, 768, 1024])
def test_all_kat_vectors(level: int, code_path: str) -> None:
    vectors = load_kem_vectors(level)
    assert len(vectors) == 1000
    kem = KEM(f"ML-KEM-{level}")
    assert (kem.public_key_size, kem.secret_key_size, kem.ciphertext_size) == SIZES[level]
    for v in vectors:
        pk, sk = kem.keygen(seed=v.d + v.z)
        assert pk == v.pk, f"vector {v.count}: public key"
        assert sk == v.sk, f"vector {v.count}: secret key"
        ct, ss = kem.encaps(pk, m=v.msg)
        assert ct == v.ct, f"vector {v.count}: ciphertext"
        assert ss == v.ss, f"vector {v.count}: shared secret"
        assert kem.decaps(sk, v.ct) == v.ss, f"vector {v.count}: decaps"
        assert v.ct_n != v.ct
        assert kem.decaps(sk, v.ct_n) == v.ss_n, f"vector {v.count}: implicit rejection"
        # The rejection key is J(z || c) = SHAKE256(z || c, 32): recompute it independently.
        assert v.ss_n == hashlib.shake_256(v.z + v.ct_n).digest(32)


@pytest.mark.parametrize("level", [512, 768, 1024])
def test_kat_vectors_through_batches(level: int, code_path: str) -> None:
    vectors = load_kem_vectors(level)[:64]
    kem = KEM(f"ML-KEM-{level}")
    sks = np.array([list(v.sk) for v in vectors], dtype=np.uint8)
    cts = np.array([list(v.ct) for v in vectors], dtype=np.uint8)
    cts_n = np.array([list(v.ct_n) for v in vectors], dtype=np.uint8)
    sss = kem.decaps_batch(sks, cts)
    sss_n = kem.decaps_batch(sks, cts_n)
    assert sss.shape == (64, 32)
    assert [bytes(r) for r in sss] == [v.ss for v in vectors]
    assert [bytes(r) for r in sss_n] == [v.ss_n for v in vectors]


@pytest.mark.parametrize("level", [512, 768, 1024])
def test_code_paths_agree_on_random_inputs(level: int) -> None:
    """Every path the CPU has (portable, AVX2, AVX-512VL, AVX-512) gives byte-identical keys,
    ciphertexts and secrets."""
    if lib.qv_mlkem_select_code_path(b"avx2") != 0:
        pytest.skip("this CPU lacks AVX2")
    kem = KEM(f"ML-KEM-{level}")
    try:
        for _ in range(300):
            seed, m = os.urandom(64), os.urandom(32)
            results = []
            for path in PATHS:
                rc = lib.qv_mlkem_select_code_path(path.encode())
                if rc == code_of("QV_ERR_NOTSUP"):
                    continue  # the CPU lacks this path
                assert rc == 0
                pk, sk = kem.keygen(seed=seed)
                ct, ss = kem.encaps(pk, m=m)
                bad = bytes([ct[0] ^ 1]) + ct[1:]
                results.append((pk, sk, ct, ss, kem.decaps(sk, ct), kem.decaps(sk, bad)))
            assert all(r == results[0] for r in results)
            assert results[0][3] == results[0][4]
    finally:
        lib.qv_mlkem_select_code_path(b"auto")
