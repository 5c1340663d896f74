"""The PQC backends behind :class:`~quantavirt.pqc.KEM` and :class:`~quantavirt.pqc.Signature`.

The C core has one interface over every backend (csrc/include/quantavirt/pqc_backend.h):
``software`` (the core's own ML-KEM / ML-DSA), ``quac100`` (the QUAC 100 card's ioctl ABI)
and ``liboqs`` (dlopen'ed when present). ``auto`` is quac100 when a card answers GET_INFO,
else software. KEM and Signature keep serving ``software`` themselves; for the other backends
their constructor returns one of the subclasses here, which send every operation through that
C interface - so the public API is the same whatever the backend.

The card is not trusted: sizes, result codes and sig_actual are checked in C, key pairs are
checked for consistency (and against the seed when one was given), and failures raise
:class:`~quantavirt.errors.QVError` with a QUAC100_ERR_* code (QUAC100_ERR_GONE when the device
vanished). What a card can still do undetected is listed in docs/pqc-backends.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from quantavirt._ffi import c_string, ffi, lib
from quantavirt.errors import QVError, code_of
from quantavirt.pqc.kem import BACKENDS, KEM
from quantavirt.pqc.signature import Signature

__all__ = [
    "DEVICE_ENV",
    "BackendKEM",
    "BackendSignature",
    "NativeBackend",
    "Quac100Info",
    "auto_backend",
    "liboqs_location",
    "open_backend",
    "quac100_devices",
]

DEVICE_ENV = "QUANTAVIRT_QUAC100_DEVICE"
BACKEND_NAMES: tuple[str, ...] = BACKENDS
_MAX_DEVICES = 16
_Bytes = bytes | bytearray | memoryview


# ---- handles ---------------------------------------------------------------------------


class NativeBackend:
    """An open backend handle of the C core (closed when garbage collected)."""

    __slots__ = ("_handle", "name", "device")

    def __init__(self, name: str, device: str | None = None) -> None:
        if not isinstance(name, str) or name not in BACKEND_NAMES:
            raise QVError("PQC_ERR_BACKEND", f"unknown backend {name!r} (one of "
                          f"{', '.join(BACKEND_NAMES)})", path="backend")
        out = ffi.new("qv_pqc_backend **")
        dev = device.encode() if device else ffi.NULL
        rc = lib.qv_pqc_backend_open(name.encode(), dev, out)
        if rc != 0:
            raise _open_error(name, rc)
        self._handle = ffi.gc(out[0], lib.qv_pqc_backend_close)
        self.name: str = c_string(lib.qv_pqc_backend_name(self._handle))
        self.device: str = c_string(lib.qv_pqc_backend_device(self._handle))

    @property
    def handle(self) -> Any:
        return self._handle

    def check(self, rc: int, what: str, path: str | None = None) -> None:
        """Raise the QVError for a nonzero code, naming the card's raw result when it matters."""
        if rc == 0:
            return
        message = f"{what}: {c_string(lib.qv_strerror(rc))}"
        if self.name == "quac100":
            raw = lib.qv_pqc_backend_last_result(self._handle)
            message += f" ({self.device}"
            message += f", card result {raw:#x})" if rc == code_of("QUAC100_ERR_DEVICE") else ")"
        raise QVError(rc, message, path=path)


def _open_error(name: str, rc: int) -> QVError:
    if rc == code_of("QUAC100_ERR_NO_DEVICE"):
        return QVError("PQC_ERR_BACKEND", "no QUAC 100 card (no /dev/quac100_N answers; "
                       f"{DEVICE_ENV} names another node)", path="backend")
    if name == "liboqs" and rc == code_of("PQC_ERR_BACKEND"):
        return QVError("PQC_ERR_BACKEND", "liboqs shared library not found", path="backend")
    return QVError(rc, f"backend {name}: {c_string(lib.qv_strerror(rc))}", path="backend")


def software_backend(backend: object) -> str:
    """The backend KEM / Signature record when they serve operations themselves: "software".

    Their ``__new__`` has already sent quac100, liboqs and an ``auto`` that finds a card to
    BackendKEM / BackendSignature, so only "software" and an ``auto`` that resolved to it get
    here; anything else (a subclass or a direct ``__init__`` call) is refused."""
    if backend in ("auto", "software"):
        return "software"
    if not isinstance(backend, str) or backend not in BACKEND_NAMES:
        raise QVError("PQC_ERR_BACKEND", f"unknown backend {backend!r} (one of "
                      f"{', '.join(BACKEND_NAMES)})", path="backend")
    raise QVError("PQC_ERR_BACKEND", f"the {backend} backend is served by quantavirt.pqc.KEM / "
                  "Signature(algorithm, backend) themselves, not by a subclass", path="backend")


def open_backend(name: str = "auto", device: str | None = None) -> NativeBackend:
    """Open a backend by name; ``auto`` resolves to quac100 or software."""
    return NativeBackend(name, device)


def auto_backend() -> str:
    """What ``backend="auto"`` picks on this host right now."""
    return open_backend("auto").name


@dataclass(frozen=True)
class Quac100Info:
    """GET_VERSION and GET_INFO of one QUAC 100 device."""

    path: str
    interface_version: int
    driver_version: int
    device_index: int
    device_name: str
    serial_number: str
    vendor_id: int
    device_id: int
    revision: int
    firmware: str
    capabilities: int
    status: int
    max_batch_size: int
    simulator: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quac100_devices() -> list[Quac100Info]:
    """Every QUAC 100 device that answers GET_VERSION and GET_INFO."""
    infos = ffi.new("qv_quac100_info[]", _MAX_DEVICES)
    count = ffi.new("int *")
    rc = lib.qv_quac100_list(infos, _MAX_DEVICES, count)
    if rc != 0:
        raise QVError(rc, "listing QUAC 100 devices")
    found = []
    for i in range(count[0]):
        d = infos[i]
        found.append(Quac100Info(
            path=c_string(d.path), interface_version=d.interface_version,
            driver_version=d.driver_version, device_index=d.device_index,
            device_name=c_string(d.device_name), serial_number=c_string(d.serial_number),
            vendor_id=d.vendor_id, device_id=d.device_id, revision=d.revision,
            firmware=f"{d.fw_major}.{d.fw_minor}.{d.fw_patch}", capabilities=d.capabilities,
            status=d.status, max_batch_size=d.max_batch_size, simulator=bool(d.simulator)))
    return found


def liboqs_location() -> str | None:
    """The liboqs library the liboqs backend would load, or None when there is none."""
    where = ffi.new("const char **")
    if lib.qv_liboqs_available(where) != 0:
        return None
    return c_string(where[0])


# ---- argument checks (the same codes as the software path) ------------------------------


def _bytes_arg(value: Any, name: str) -> Any:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise QVError("QV_ERR_INVAL", f"{name} must be bytes, not {type(value).__name__}",
                      path=name)
    return ffi.from_buffer("uint8_t[]", value)


def _sized_arg(value: Any, size: int, name: str, what: str) -> Any:
    buf = _bytes_arg(value, name)
    if len(buf) != size:
        raise QVError("PQC_ERR_SIZE", f"{what} is {size} bytes, got {len(buf)}", path=name)
    return buf


def _matrix_arg(value: Any, width: int | None, name: str, rows: int | None = None,
                ) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise QVError("QV_ERR_INVAL", f"{name} must be a numpy array", path=name)
    if value.dtype != np.uint8 or value.ndim != 2 or (width is not None
                                                     and value.shape[1] != width):
        raise QVError("PQC_ERR_SIZE", f"{name} must be a uint8 array of shape (n, "
                      f"{width if width is not None else 'm'}), got {value.dtype} {value.shape}",
                      path=name)
    if rows is not None and value.shape[0] != rows:
        raise QVError("PQC_ERR_SIZE", f"{name} must have {rows} rows, got {value.shape[0]}",
                      path=name)
    return np.ascontiguousarray(value)


def _u8(arr: np.ndarray) -> Any:
    return ffi.from_buffer("uint8_t[]", arr)


def _wipe(buf: Any, size: int) -> None:
    ffi.memmove(buf, b"\0" * size, size)


def _open_for(algorithm: str, backend: str, families: dict[str, int]) -> NativeBackend | None:
    """The native handle for a non-software backend, or None when software serves."""
    if algorithm not in families:
        return None  # the class itself reports the unknown algorithm
    native = open_backend(backend)
    return None if native.name == "software" else native


# ---- KEM -------------------------------------------------------------------------------


class BackendKEM(KEM):
    """:class:`KEM` served by the quac100 or liboqs backend through the C interface."""

    __slots__ = ("_native", "_alg")

    def __init__(self, algorithm: str, backend: str = "auto") -> None:
        pass  # set up by _create: KEM.__new__ hands out fully built instances

    @classmethod
    def _create(cls, algorithm: str, native: NativeBackend) -> BackendKEM:
        self = object.__new__(cls)
        KEM.__init__(self, algorithm, "software")  # sizes and names
        self.backend = native.name
        self._native = native
        self._alg = lib.qv_pqc_algorithm_id(algorithm.encode())
        return self

    @property
    def code_path(self) -> str:
        return "card" if self.backend == "quac100" else self.backend

    @property
    def device(self) -> str:
        """The QUAC 100 device node in use ("" for liboqs)."""
        return self._native.device

    def keygen(self, seed: _Bytes | None = None) -> tuple[bytes, bytes]:
        pk = ffi.new("uint8_t[]", self._pk)
        sk = ffi.new("uint8_t[]", self._sk)
        try:
            if seed is None:
                sd, sd_len = ffi.NULL, 0
            else:
                sd = _sized_arg(seed, 64, "seed", "seed (d || z)")
                sd_len = 64
            self._native.check(lib.qv_pqc_kem_keygen(self._native.handle, self._alg, sd, sd_len,
                                                     pk, self._pk, sk, self._sk), "keygen")
            return bytes(pk), bytes(sk)
        finally:
            _wipe(sk, self._sk)

    def encaps(self, pk: _Bytes, m: _Bytes | None = None) -> tuple[bytes, bytes]:
        pkb = _sized_arg(pk, self._pk, "pk", f"{self.algorithm} public key")
        if m is not None:
            raise QVError("QV_ERR_NOTSUP", f"the {self.backend} backend has no derandomized "
                          "encapsulation (m is for test vectors on the software backend)",
                          path="m")
        ct = ffi.new("uint8_t[]", self._ct)
        ss = ffi.new("uint8_t[]", 32)
        self._native.check(lib.qv_pqc_kem_encaps(self._native.handle, self._alg, pkb, self._pk,
                                                 ct, self._ct, ss, 32), "encaps", path="pk")
        return bytes(ct), bytes(ss)

    def decaps(self, sk: _Bytes, ct: _Bytes) -> bytes:
        skb = _sized_arg(sk, self._sk, "sk", f"{self.algorithm} secret key")
        ctb = _sized_arg(ct, self._ct, "ct", f"{self.algorithm} ciphertext")
        ss = ffi.new("uint8_t[]", 32)
        self._native.check(lib.qv_pqc_kem_decaps(self._native.handle, self._alg, skb, self._sk,
                                                 ctb, self._ct, ss, 32), "decaps", path="sk")
        return bytes(ss)

    def keygen_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(n, int) or n < 0:
            raise QVError("QV_ERR_INVAL", f"n must be a non-negative int, got {n!r}", path="n")
        pks = np.empty((n, self._pk), dtype=np.uint8)
        sks = np.empty((n, self._sk), dtype=np.uint8)
        bad = ffi.new("size_t *")
        rc = lib.qv_pqc_kem_keygen_batch(self._native.handle, self._alg, n, _u8(pks), _u8(sks),
                                         bad)
        if rc != 0:
            sks.fill(0)
        self._native.check(rc, "keygen_batch", path=f"[{int(bad[0])}]")
        return pks, sks

    def encaps_batch(self, pks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pks = _matrix_arg(pks, self._pk, "pks")
        n = pks.shape[0]
        cts = np.empty((n, self._ct), dtype=np.uint8)
        sss = np.empty((n, 32), dtype=np.uint8)
        bad = ffi.new("size_t *")
        rc = lib.qv_pqc_kem_encaps_batch(self._native.handle, self._alg, n, _u8(pks), _u8(cts),
                                         _u8(sss), bad)
        self._native.check(rc, "encaps_batch", path=f"pks[{int(bad[0])}]")
        return cts, sss

    def decaps_batch(self, sks: np.ndarray, cts: np.ndarray) -> np.ndarray:
        sks = _matrix_arg(sks, self._sk, "sks")
        cts = _matrix_arg(cts, self._ct, "cts", rows=sks.shape[0])
        n = sks.shape[0]
        sss = np.empty((n, 32), dtype=np.uint8)
        bad = ffi.new("size_t *")
        rc = lib.qv_pqc_kem_decaps_batch(self._native.handle, self._alg, n, _u8(sks), _u8(cts),
                                         _u8(sss), bad)
        self._native.check(rc, "decaps_batch", path=f"sks[{int(bad[0])}]")
        return sss


def native_kem(algorithm: str, backend: str) -> BackendKEM | None:
    """For KEM.__new__: a BackendKEM when `backend` resolves to a non-software backend."""
    native = _open_for(algorithm, backend, {"ML-KEM-512": 0, "ML-KEM-768": 0, "ML-KEM-1024": 0})
    return None if native is None else BackendKEM._create(algorithm, native)


# ---- signatures --------------------------------------------------------------------------


class BackendSignature(Signature):
    """:class:`Signature` served by the quac100 or liboqs backend through the C interface."""

    __slots__ = ("_native", "_alg")

    def __init__(self, algorithm: str, backend: str = "auto") -> None:
        pass  # set up by _create

    @classmethod
    def _create(cls, algorithm: str, native: NativeBackend) -> BackendSignature:
        self = object.__new__(cls)
        Signature.__init__(self, algorithm, "software")
        self.backend = native.name
        self._native = native
        self._alg = lib.qv_pqc_algorithm_id(algorithm.encode())
        return self

    @property
    def device(self) -> str:
        return self._native.device

    def _context(self, ctx: Any) -> Any:
        c = _bytes_arg(ctx, "ctx")
        if len(c) > 255:
            raise QVError("PQC_ERR_CONTEXT", f"ctx is {len(c)} bytes; FIPS 204 allows at most "
                          "255", path="ctx")
        return c

    def keygen(self, seed: _Bytes | None = None) -> tuple[bytes, bytes]:
        pk = ffi.new("uint8_t[]", self._pk_size)
        sk = ffi.new("uint8_t[]", self._sk_size)
        try:
            if seed is None:
                sd, sd_len = ffi.NULL, 0
            else:
                sd, sd_len = _sized_arg(seed, 32, "seed", "seed (xi)"), 32
            self._native.check(lib.qv_pqc_sig_keygen(self._native.handle, self._alg, sd, sd_len,
                                                     pk, self._pk_size, sk, self._sk_size),
                               "keygen")
            return bytes(pk), bytes(sk)
        finally:
            _wipe(sk, self._sk_size)

    def sign(self, sk: _Bytes, msg: _Bytes, ctx: _Bytes = b"", deterministic: bool = False,
             ) -> bytes:
        skb = _sized_arg(sk, self._sk_size, "sk", f"{self.algorithm} secret key")
        m = _bytes_arg(msg, "msg")
        c = self._context(ctx)
        out = ffi.new("uint8_t[]", self._sig_size)
        self._native.check(lib.qv_pqc_sig_sign(self._native.handle, self._alg, skb,
                                               self._sk_size, m, len(m), c, len(c),
                                               1 if deterministic else 0, out, self._sig_size),
                           "sign")
        return bytes(out)

    def sign_with_randomness(self, sk: _Bytes, msg: _Bytes, rnd: _Bytes, ctx: _Bytes = b"",
                             ) -> bytes:
        raise QVError("QV_ERR_NOTSUP", f"the {self.backend} backend signs with its own "
                      "randomness (sign_with_randomness is for the software backend)", path="rnd")

    def verify(self, pk: _Bytes, msg: _Bytes, signature: _Bytes, ctx: _Bytes = b"") -> bool:
        pkb = _sized_arg(pk, self._pk_size, "pk", f"{self.algorithm} public key")
        m = _bytes_arg(msg, "msg")
        s = _bytes_arg(signature, "signature")
        c = self._context(ctx)
        rc = lib.qv_pqc_sig_verify(self._native.handle, self._alg, pkb, self._pk_size, m,
                                   len(m), s, len(s), c, len(c))
        if rc == code_of("PQC_ERR_VERIFY"):
            return False
        self._native.check(rc, "verify")
        return True

    def keygen_batch(self, n: int | None = None, seeds: npt.ArrayLike | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
        if seeds is not None:
            sd = _matrix_arg(np.asarray(seeds, dtype=np.uint8), 32, "seeds")
            count, seed_ptr = sd.shape[0], _u8(sd)
        else:
            if n is None or not isinstance(n, int) or n < 0:
                raise QVError("QV_ERR_INVAL", "keygen_batch needs n >= 0 or seeds", path="n")
            count, seed_ptr = n, ffi.NULL
        pks = np.empty((count, self._pk_size), dtype=np.uint8)
        sks = np.empty((count, self._sk_size), dtype=np.uint8)
        bad = ffi.new("size_t *")
        rc = lib.qv_pqc_sig_keygen_batch(self._native.handle, self._alg, count, _u8(pks),
                                         _u8(sks), seed_ptr, bad)
        if rc != 0:
            sks.fill(0)
        self._native.check(rc, "keygen_batch", path=f"[{int(bad[0])}]")
        return pks, sks

    def sign_batch(self, sks: npt.ArrayLike, msgs: npt.ArrayLike, ctx: _Bytes = b"",
                   deterministic: bool = False) -> np.ndarray:
        skm = _matrix_arg(np.asarray(sks, dtype=np.uint8), self._sk_size, "sks")
        mm = _matrix_arg(np.asarray(msgs, dtype=np.uint8), None, "msgs", rows=skm.shape[0])
        c = self._context(ctx)
        out = np.empty((skm.shape[0], self._sig_size), dtype=np.uint8)
        bad = ffi.new("size_t *")
        rc = lib.qv_pqc_sig_sign_batch(self._native.handle, self._alg, skm.shape[0], _u8(out),
                                       _u8(skm), _u8(mm), mm.shape[1], c, len(c),
                                       1 if deterministic else 0, bad)
        self._native.check(rc, "sign_batch", path=f"sks[{int(bad[0])}]")
        return out

    def verify_batch(self, pks: npt.ArrayLike, msgs: npt.ArrayLike, signatures: npt.ArrayLike,
                     ctx: _Bytes = b"") -> np.ndarray:
        pkm = _matrix_arg(np.asarray(pks, dtype=np.uint8), self._pk_size, "pks")
        n = pkm.shape[0]
        mm = _matrix_arg(np.asarray(msgs, dtype=np.uint8), None, "msgs", rows=n)
        sm = _matrix_arg(np.asarray(signatures, dtype=np.uint8), self._sig_size, "signatures",
                         rows=n)
        c = self._context(ctx)
        ok = np.zeros(n, dtype=np.uint8)
        self._native.check(lib.qv_pqc_sig_verify_batch(self._native.handle, self._alg, n,
                                                       _u8(ok), _u8(pkm), _u8(mm), mm.shape[1],
                                                       _u8(sm), c, len(c)), "verify_batch")
        return ok.astype(bool)


def native_signature(algorithm: str, backend: str) -> BackendSignature | None:
    """For Signature.__new__: a BackendSignature for a non-software backend, else None."""
    native = _open_for(algorithm, backend, {"ML-DSA-44": 0, "ML-DSA-65": 0, "ML-DSA-87": 0})
    return None if native is None else BackendSignature._create(algorithm, native)
