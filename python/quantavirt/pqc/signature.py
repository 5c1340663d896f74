"""ML-DSA signatures (FIPS 204): ``quantavirt.pqc.Signature``.

    sig = Signature("ML-DSA-65", backend="auto")
    pk, sk = sig.keygen()                      # or sig.keygen(seed=xi_32_bytes)
    s = sig.sign(sk, msg, ctx=b"", deterministic=False)
    ok = sig.verify(pk, msg, s, ctx=b"")       # bool

All keys and signatures are ``bytes`` in the FIPS 204 encodings (pkEncode, skEncode,
sigEncode). Signing is the pure (non-prehashed) external interface with a context string of at
most 255 bytes. The batch variants take and return numpy arrays of shape (n, size) and run
their loop in C, one native call per batch.

Errors are :class:`~quantavirt.errors.QVError` with PQC_ERR_* codes: PQC_ERR_ALGORITHM for an
unknown parameter set, PQC_ERR_BACKEND for a backend that is not available, PQC_ERR_SIZE for a
key, seed or array of the wrong size, PQC_ERR_CONTEXT for a context over 255 bytes. A
signature that does not verify - including one of the wrong length or with a malformed hint
encoding - makes :meth:`Signature.verify` return False; it never raises for that.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from quantavirt._ffi import ffi, lib
from quantavirt.errors import QVError, code_of
from quantavirt.pqc.kem import BACKENDS

__all__ = ["Signature", "ALGORITHMS", "BACKENDS"]

# Schema names -> the C core's parameter-set identifiers.
ALGORITHMS: dict[str, int] = {
    "ML-DSA-44": lib.QV_MLDSA_44,
    "ML-DSA-65": lib.QV_MLDSA_65,
    "ML-DSA-87": lib.QV_MLDSA_87,
}

SEED_SIZE: int = lib.QV_MLDSA_SEED_BYTES
MAX_CONTEXT: int = lib.QV_MLDSA_MAX_CONTEXT

Bytes = bytes | bytearray | memoryview


def _check(rc: int, what: str) -> None:
    if rc != 0:
        raise QVError(rc, f"{what}: {QVError(rc).message}")


def _buffer(value: Any, name: str) -> Any:
    """A zero-copy cffi view of a bytes-like value; QV_ERR_INVAL for anything else."""
    if isinstance(value, str):
        raise QVError("QV_ERR_INVAL", f"{name} must be bytes, not str")
    try:
        return ffi.from_buffer("uint8_t[]", value)
    except TypeError as exc:
        raise QVError("QV_ERR_INVAL", f"{name} must be bytes-like, not "
                      f"{type(value).__name__}") from exc


def _sized(value: Any, size: int, name: str) -> Any:
    buf = _buffer(value, name)
    if len(buf) != size:
        raise QVError("PQC_ERR_SIZE", f"{name} must be {size} bytes, got {len(buf)}")
    return buf


def _context(ctx: Any) -> Any:
    buf = _buffer(ctx, "ctx")
    if len(buf) > MAX_CONTEXT:
        raise QVError("PQC_ERR_CONTEXT",
                      f"ctx is {len(buf)} bytes; FIPS 204 allows at most {MAX_CONTEXT}")
    return buf


def _matrix(value: Any, width: int | None, name: str, rows: int | None = None) -> np.ndarray:
    """A C-contiguous uint8 array of shape (n, width); PQC_ERR_SIZE when the shape is wrong,
    QV_ERR_INVAL for anything that is not bytes (another dtype is never cast silently)."""
    if isinstance(value, np.ndarray) and value.dtype != np.uint8:
        raise QVError("QV_ERR_INVAL", f"{name} must be a uint8 array, not {value.dtype}")
    try:
        arr = np.ascontiguousarray(value, dtype=np.uint8)
    except (TypeError, ValueError, OverflowError) as exc:
        raise QVError("QV_ERR_INVAL", f"{name} must be an array of bytes: {exc}") from exc
    if arr.ndim != 2:
        raise QVError("PQC_ERR_SIZE", f"{name} must be a 2-D array (n, size), got shape "
                      f"{arr.shape}")
    if width is not None and arr.shape[1] != width:
        raise QVError("PQC_ERR_SIZE", f"{name} rows must be {width} bytes, got {arr.shape[1]}")
    if rows is not None and arr.shape[0] != rows:
        raise QVError("PQC_ERR_SIZE", f"{name} must have {rows} rows, got {arr.shape[0]}")
    return arr


class Signature:
    """One ML-DSA parameter set on one backend."""

    def __new__(cls, algorithm: str = "", backend: str = "auto") -> Signature:
        # quac100 / liboqs (or auto finding a card): a subclass serving every operation
        # through the C backend interface (quantavirt.pqc.backend); software stays here.
        if cls is Signature and algorithm:  # (no arguments: copy / pickle internals)
            from quantavirt.pqc.backend import native_signature

            served = native_signature(algorithm, backend)
            if served is not None:
                return served
        return super().__new__(cls)

    def __init__(self, algorithm: str, backend: str = "auto") -> None:
        if algorithm not in ALGORITHMS:
            raise QVError("PQC_ERR_ALGORITHM", f"unknown signature algorithm {algorithm!r}; "
                          f"expected one of {', '.join(ALGORITHMS)}")
        from quantavirt.pqc.backend import software_backend

        self.algorithm: str = algorithm
        self.backend: str = software_backend(backend)
        self._alg: int = ALGORITHMS[algorithm]
        sizes = ffi.new("size_t[3]")
        _check(lib.qv_mldsa_sizes(self._alg, sizes, sizes + 1, sizes + 2), algorithm)
        self._pk_size, self._sk_size, self._sig_size = int(sizes[0]), int(sizes[1]), int(sizes[2])

    def __repr__(self) -> str:
        return f"Signature({self.algorithm!r}, backend={self.backend!r})"

    @property
    def public_key_size(self) -> int:
        return self._pk_size

    @property
    def secret_key_size(self) -> int:
        return self._sk_size

    @property
    def signature_size(self) -> int:
        return self._sig_size

    @property
    def seed_size(self) -> int:
        return SEED_SIZE

    # ---- single operations ------------------------------------------------------------------

    def keygen(self, seed: Bytes | None = None) -> tuple[bytes, bytes]:
        """(pk, sk); with `seed`, ML-DSA.KeyGen_internal(xi) for that 32-byte xi."""
        pk = ffi.new("uint8_t[]", self._pk_size)
        sk = ffi.new("uint8_t[]", self._sk_size)
        try:
            if seed is None:
                _check(lib.qv_mldsa_keygen(self._alg, pk, sk), "keygen")
            else:
                xi = _sized(seed, SEED_SIZE, "seed")
                _check(lib.qv_mldsa_keygen_seed(self._alg, pk, sk, xi), "keygen")
            return ffi.buffer(pk)[:], ffi.buffer(sk)[:]
        finally:
            ffi.memmove(sk, b"\0" * self._sk_size, self._sk_size)

    def sign(self, sk: Bytes, msg: Bytes, ctx: Bytes = b"", deterministic: bool = False,
             ) -> bytes:
        """ML-DSA.Sign(sk, msg, ctx): hedged (fresh rnd) unless `deterministic` (rnd = 0^32)."""
        skb = _sized(sk, self._sk_size, "sk")
        m = _buffer(msg, "msg")
        c = _context(ctx)
        out = ffi.new("uint8_t[]", self._sig_size)
        _check(lib.qv_mldsa_sign(self._alg, out, skb, m, len(m), c, len(c),
                                 1 if deterministic else 0), "sign")
        return ffi.buffer(out)[:]

    def sign_with_randomness(self, sk: Bytes, msg: Bytes, rnd: Bytes, ctx: Bytes = b"",
                             ) -> bytes:
        """ML-DSA.Sign with a caller-chosen 32-byte rnd (reproducible hedged signing)."""
        skb = _sized(sk, self._sk_size, "sk")
        r = _sized(rnd, lib.QV_MLDSA_RND_BYTES, "rnd")
        m = _buffer(msg, "msg")
        c = _context(ctx)
        out = ffi.new("uint8_t[]", self._sig_size)
        _check(lib.qv_mldsa_sign_rnd(self._alg, out, skb, m, len(m), c, len(c), r), "sign")
        return ffi.buffer(out)[:]

    def verify(self, pk: Bytes, msg: Bytes, signature: Bytes, ctx: Bytes = b"") -> bool:
        """ML-DSA.Verify: True or False. A public key of the wrong size raises PQC_ERR_SIZE and
        a context over 255 bytes PQC_ERR_CONTEXT; any bad signature is just False."""
        pkb = _sized(pk, self._pk_size, "pk")
        m = _buffer(msg, "msg")
        s = _buffer(signature, "signature")
        c = _context(ctx)
        rc = lib.qv_mldsa_verify(self._alg, pkb, len(pkb), m, len(m), s, len(s), c, len(c))
        if rc == 0:
            return True
        if rc == code_of("PQC_ERR_VERIFY"):
            return False
        raise QVError(rc, "verify")

    # ---- batches: numpy arrays of shape (n, size), one native call each -----------------

    def keygen_batch(self, n: int | None = None, seeds: npt.ArrayLike | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(pks, sks) of shapes (n, pk_size), (n, sk_size): random, or from seeds (n, 32)."""
        if seeds is not None:
            sd = _matrix(seeds, SEED_SIZE, "seeds")
            count = sd.shape[0]
            seed_ptr = ffi.from_buffer("uint8_t[]", sd)
        else:
            if n is None or n < 0:
                raise QVError("QV_ERR_INVAL", "keygen_batch needs n >= 0 or seeds")
            count, seed_ptr = int(n), ffi.NULL
        pks = np.empty((count, self._pk_size), dtype=np.uint8)
        sks = np.empty((count, self._sk_size), dtype=np.uint8)
        _check(lib.qv_mldsa_keygen_batch(self._alg, count, ffi.from_buffer("uint8_t[]", pks),
                                         ffi.from_buffer("uint8_t[]", sks), seed_ptr),
               "keygen_batch")
        return pks, sks

    def sign_batch(self, sks: npt.ArrayLike, msgs: npt.ArrayLike, ctx: Bytes = b"",
                   deterministic: bool = False) -> np.ndarray:
        """Signatures (n, sig_size) of msgs[i] (an (n, m) array) under sks[i] (n, sk_size)."""
        skm = _matrix(sks, self._sk_size, "sks")
        mm = _matrix(msgs, None, "msgs", rows=skm.shape[0])
        c = _context(ctx)
        out = np.empty((skm.shape[0], self._sig_size), dtype=np.uint8)
        _check(lib.qv_mldsa_sign_batch(self._alg, skm.shape[0],
                                       ffi.from_buffer("uint8_t[]", out),
                                       ffi.from_buffer("uint8_t[]", skm),
                                       ffi.from_buffer("uint8_t[]", mm), mm.shape[1], c, len(c),
                                       1 if deterministic else 0), "sign_batch")
        return out

    def verify_batch(self, pks: npt.ArrayLike, msgs: npt.ArrayLike, signatures: npt.ArrayLike,
                     ctx: Bytes = b"") -> np.ndarray:
        """A bool array (n,): signatures[i] (n, sig_size) on msgs[i] under pks[i]."""
        pkm = _matrix(pks, self._pk_size, "pks")
        n = pkm.shape[0]
        mm = _matrix(msgs, None, "msgs", rows=n)
        sm = _matrix(signatures, self._sig_size, "signatures", rows=n)
        c = _context(ctx)
        ok = np.zeros(n, dtype=np.uint8)
        _check(lib.qv_mldsa_verify_batch(self._alg, n, ffi.from_buffer("uint8_t[]", ok),
                                         ffi.from_buffer("uint8_t[]", pkm),
                                         ffi.from_buffer("uint8_t[]", mm), mm.shape[1],
                                         ffi.from_buffer("uint8_t[]", sm), c, len(c)),
               "verify_batch")
        return ok.astype(bool)
