"""HKDF (RFC 5869) over SHA3-256, computed by OpenSSL libcrypto in the C core.

    okm = quantavirt.pqc.hkdf_sha3_256(shared_secret, salt=b"...", info=b"...", length=32)

The same function the encrypted disk derives its keys with. Failures raise
:class:`quantavirt.errors.QVError`: PQC_ERR_SIZE for a length outside 1..255*32 (RFC 5869's
L <= 255 * HashLen), QV_ERR_INVAL for inputs that are not bytes-like or a length that is not
an int.
"""

from __future__ import annotations

from typing import Any

from quantavirt._ffi import c_string, ffi, lib
from quantavirt.errors import QVError

__all__ = ["hkdf_sha3_256", "HKDF_SHA3_256_MAX_LENGTH"]

#: RFC 5869: the output is at most 255 hash lengths (255 * 32 bytes for SHA3-256).
HKDF_SHA3_256_MAX_LENGTH: int = int(lib.QV_HKDF_SHA3_256_MAX_LENGTH)


def _bytes_arg(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise QVError("QV_ERR_INVAL", f"{name} must be bytes, not {type(value).__name__}",
                      path=name)
    return bytes(value)


def hkdf_sha3_256(ikm: bytes, *, salt: bytes = b"", info: bytes = b"",
                  length: int = 32) -> bytes:
    """HKDF-Expand(HKDF-Extract(salt, ikm), info, length) with SHA3-256.

    An empty salt stands for 32 zero bytes (RFC 5869 section 2.2)."""
    ikm_b = _bytes_arg(ikm, "ikm")
    salt_b = _bytes_arg(salt, "salt")
    info_b = _bytes_arg(info, "info")
    if isinstance(length, bool) or not isinstance(length, int):
        raise QVError("QV_ERR_INVAL", f"length must be an int, not {type(length).__name__}",
                      path="length")
    if not 1 <= length <= HKDF_SHA3_256_MAX_LENGTH:
        raise QVError("PQC_ERR_SIZE",
                      f"length must be 1..{HKDF_SHA3_256_MAX_LENGTH} bytes "
                      f"(255 * 32, RFC 5869), got {length}", path="length")
    out = ffi.new("uint8_t[]", length)
    rc = lib.qv_hkdf_sha3_256(ikm_b, len(ikm_b), salt_b, len(salt_b), info_b, len(info_b),
                              out, length)
    if rc != 0:
        raise QVError(rc, f"HKDF-SHA3-256: {c_string(lib.qv_strerror(rc))}")
    return bytes(ffi.buffer(out, length))
