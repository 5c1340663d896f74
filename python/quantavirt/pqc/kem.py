"""ML-KEM (FIPS 203) key encapsulation: ML-KEM-512, ML-KEM-768 and ML-KEM-1024.

    kem = quantavirt.pqc.KEM("ML-KEM-768", backend="auto")
    pk, sk = kem.keygen()                  # or kem.keygen(seed=d_and_z_64_bytes)
    ct, ss = kem.encaps(pk)
    assert kem.decaps(sk, ct) == ss

Keys, ciphertexts and shared secrets are ``bytes`` in the FIPS 203 encodings. The batch
variants take and return numpy ``uint8`` arrays of shape (n, size); the loop over n runs in
C, one call per batch. Failures raise :class:`quantavirt.errors.QVError` with a PQC_ERR_*
code: PQC_ERR_ALGORITHM, PQC_ERR_BACKEND, PQC_ERR_SIZE (wrong length), PQC_ERR_KEY (the
encapsulation-key modulus check or the decapsulation-key hash check failed).
A ciphertext that does not decrypt is no error: decaps then returns the implicit-rejection
key J(z || c), as FIPS 203 requires.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantavirt._ffi import c_string, ffi, lib
from quantavirt.errors import QVError

__all__ = ["KEM", "ALGORITHMS", "BACKENDS"]

#: Algorithm name (as in the VM configuration schema) -> FIPS 203 parameter set.
ALGORITHMS: dict[str, int] = {"ML-KEM-512": 512, "ML-KEM-768": 768, "ML-KEM-1024": 1024}
#: Backend names (quantavirt.pqc.backend serves all but software).
BACKENDS: tuple[str, ...] = ("auto", "software", "quac100", "liboqs")

SHARED_SECRET_SIZE = 32
SEED_SIZE = 64
MESSAGE_SIZE = 32

_Bytes = bytes | bytearray | memoryview


def _check(rc: int, what: str, path: str | None = None) -> None:
    if rc != 0:
        raise QVError(rc, f"{what}: {c_string(lib.qv_strerror(rc))}", path=path)


def _as_bytes(value: Any, name: str) -> bytes | bytearray | memoryview:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise QVError("QV_ERR_INVAL", f"{name} must be bytes, not {type(value).__name__}",
                      path=name)
    return value


class KEM:
    """One ML-KEM parameter set on one backend."""

    __slots__ = ("algorithm", "backend", "_level", "_pk", "_sk", "_ct")

    def __new__(cls, algorithm: str = "", backend: str = "auto") -> KEM:
        # quac100 / liboqs (or auto finding a card): a subclass serving every operation
        # through the C backend interface (quantavirt.pqc.backend); software stays here.
        if cls is KEM and algorithm:  # (no arguments: copy / pickle internals)
            from quantavirt.pqc.backend import native_kem

            served = native_kem(algorithm, backend)
            if served is not None:
                return served
        return super().__new__(cls)

    def __init__(self, algorithm: str, backend: str = "auto") -> None:
        level = ALGORITHMS.get(algorithm)
        if level is None:
            raise QVError("PQC_ERR_ALGORITHM",
                          f"unknown KEM {algorithm!r} (one of {', '.join(ALGORITHMS)})",
                          path="algorithm")
        from quantavirt.pqc.backend import software_backend

        self.algorithm = algorithm
        self.backend = software_backend(backend)
        self._level = level
        sizes = ffi.new("size_t[3]")
        _check(lib.qv_mlkem_sizes(level, sizes, sizes + 1, sizes + 2), "sizes")
        self._pk, self._sk, self._ct = int(sizes[0]), int(sizes[1]), int(sizes[2])

    def __repr__(self) -> str:
        return f"KEM({self.algorithm!r}, backend={self.backend!r})"

    # -- sizes (FIPS 203 table 3) --
    @property
    def public_key_size(self) -> int:
        return self._pk

    @property
    def secret_key_size(self) -> int:
        return self._sk

    @property
    def ciphertext_size(self) -> int:
        return self._ct

    @property
    def shared_secret_size(self) -> int:
        return SHARED_SECRET_SIZE

    @property
    def code_path(self) -> str:
        """The C code path serving this backend ("portable" or "avx2")."""
        return c_string(lib.qv_mlkem_code_path())

    # -- single operations --
    def keygen(self, seed: _Bytes | None = None) -> tuple[bytes, bytes]:
        """(public key, secret key); with ``seed`` = d || z (64 bytes) deterministically."""
        pk = bytearray(self._pk)
        sk = bytearray(self._sk)
        pk_buf, sk_buf = ffi.from_buffer(pk), ffi.from_buffer(sk)
        if seed is None:
            _check(lib.qv_mlkem_keygen(self._level, pk_buf, self._pk, sk_buf, self._sk), "keygen")
        else:
            seed = _as_bytes(seed, "seed")
            if len(seed) != SEED_SIZE:
                raise QVError("PQC_ERR_SIZE", f"seed must be {SEED_SIZE} bytes (d || z), "
                              f"got {len(seed)}", path="seed")
            _check(lib.qv_mlkem_keygen_seed(self._level, ffi.from_buffer(seed), SEED_SIZE,
                                            pk_buf, self._pk, sk_buf, self._sk), "keygen")
        result = bytes(pk), bytes(sk)
        sk[:] = bytes(self._sk)  # do not leave a second copy of the secret key around
        return result

    def encaps(self, pk: _Bytes, m: _Bytes | None = None) -> tuple[bytes, bytes]:
        """(ciphertext, shared secret) for public key ``pk``.

        ``m`` (32 bytes) makes the operation deterministic (ML-KEM.Encaps_internal); it exists
        for test vectors only. Never pass it in production: m must be fresh randomness.
        """
        pk = _as_bytes(pk, "pk")
        if len(pk) != self._pk:
            raise QVError("PQC_ERR_SIZE", f"{self.algorithm} public key is {self._pk} bytes, "
                          f"got {len(pk)}", path="pk")
        ct = bytearray(self._ct)
        ss = bytearray(SHARED_SECRET_SIZE)
        ct_buf, ss_buf = ffi.from_buffer(ct), ffi.from_buffer(ss)
        if m is None:
            rc = lib.qv_mlkem_encaps(self._level, ffi.from_buffer(pk), self._pk, ct_buf, self._ct,
                                     ss_buf, SHARED_SECRET_SIZE)
        else:
            m = _as_bytes(m, "m")
            if len(m) != MESSAGE_SIZE:
                raise QVError("PQC_ERR_SIZE", f"m must be {MESSAGE_SIZE} bytes, got {len(m)}",
                              path="m")
            rc = lib.qv_mlkem_encaps_derand(self._level, ffi.from_buffer(pk), self._pk,
                                            ffi.from_buffer(m), MESSAGE_SIZE, ct_buf, self._ct,
                                            ss_buf, SHARED_SECRET_SIZE)
        _check(rc, "encaps", path="pk")
        return bytes(ct), bytes(ss)

    def decaps(self, sk: _Bytes, ct: _Bytes) -> bytes:
        """The shared secret; a ciphertext that fails re-encryption gives J(z || ct)."""
        sk = _as_bytes(sk, "sk")
        ct = _as_bytes(ct, "ct")
        if len(sk) != self._sk:
            raise QVError("PQC_ERR_SIZE", f"{self.algorithm} secret key is {self._sk} bytes, "
                          f"got {len(sk)}", path="sk")
        if len(ct) != self._ct:
            raise QVError("PQC_ERR_SIZE", f"{self.algorithm} ciphertext is {self._ct} bytes, "
                          f"got {len(ct)}", path="ct")
        ss = bytearray(SHARED_SECRET_SIZE)
        _check(lib.qv_mlkem_decaps(self._level, ffi.from_buffer(sk), self._sk,
                                   ffi.from_buffer(ct), self._ct, ffi.from_buffer(ss),
                                   SHARED_SECRET_SIZE), "decaps", path="sk")
        return bytes(ss)

    # -- batches: one C call each --
    def _batch_input(self, arr: Any, size: int, name: str) -> np.ndarray:
        if not isinstance(arr, np.ndarray):
            raise QVError("QV_ERR_INVAL", f"{name} must be a numpy array", path=name)
        if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != size:
            raise QVError("PQC_ERR_SIZE", f"{name} must be a uint8 array of shape (n, {size}), "
                          f"got {arr.dtype} {arr.shape}", path=name)
        return np.ascontiguousarray(arr)

    def keygen_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n fresh key pairs: arrays (n, public_key_size) and (n, secret_key_size)."""
        if not isinstance(n, int) or n < 0:
            raise QVError("QV_ERR_INVAL", f"n must be a non-negative int, got {n!r}", path="n")
        pks = np.empty((n, self._pk), dtype=np.uint8)
        sks = np.empty((n, self._sk), dtype=np.uint8)
        _check(lib.qv_mlkem_keygen_batch(self._level, n, ffi.from_buffer(pks),
                                         ffi.from_buffer(sks)), "keygen_batch")
        return pks, sks

    def encaps_batch(self, pks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Encapsulate to each row of ``pks``: arrays (n, ciphertext_size) and (n, 32)."""
        pks = self._batch_input(pks, self._pk, "pks")
        n = pks.shape[0]
        cts = np.empty((n, self._ct), dtype=np.uint8)
        sss = np.empty((n, SHARED_SECRET_SIZE), dtype=np.uint8)
        bad = ffi.new("size_t *")
        rc = lib.qv_mlkem_encaps_batch(self._level, n, ffi.from_buffer(pks),
                                       ffi.from_buffer(cts), ffi.from_buffer(sss), bad)
        if rc != 0:
            _check(rc, "encaps_batch", path=f"pks[{int(bad[0])}]")
        return cts, sss

    def decaps_batch(self, sks: np.ndarray, cts: np.ndarray) -> np.ndarray:
        """Decapsulate row i of ``cts`` with row i of ``sks``: array (n, 32)."""
        sks = self._batch_input(sks, self._sk, "sks")
        cts = self._batch_input(cts, self._ct, "cts")
        if sks.shape[0] != cts.shape[0]:
            raise QVError("PQC_ERR_SIZE", f"{sks.shape[0]} secret keys but {cts.shape[0]} "
                          "ciphertexts", path="cts")
        n = sks.shape[0]
        sss = np.empty((n, SHARED_SECRET_SIZE), dtype=np.uint8)
        bad = ffi.new("size_t *")
        rc = lib.qv_mlkem_decaps_batch(self._level, n, ffi.from_buffer(sks),
                                       ffi.from_buffer(cts), ffi.from_buffer(sss), bad)
        if rc != 0:
            _check(rc, "decaps_batch", path=f"sks[{int(bad[0])}]")
        return sss
