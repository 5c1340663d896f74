"""FIPS 202 in the C core against Python's hashlib (OpenSSL), over many lengths."""

import hashlib

import pytest

from quantavirt._ffi import ffi, lib


def _c_hash(fn, outlen: int, data: bytes, xof: bool) -> bytes:
    out = ffi.new("uint8_t[]", outlen)
    if xof:
        fn(out, outlen, data, len(data))
    else:
        fn(out, data, len(data))
    return bytes(out)


LENGTHS = [0, 1, 7, 8, 71, 72, 73, 135, 136, 137, 167, 168, 169, 500, 1000]


@pytest.mark.parametrize("n", LENGTHS)
def test_sha3_and_shake_match_hashlib(n):
    data = bytes((i * 131 + 7) & 0xFF for i in range(n))
    assert _c_hash(lib.qv_sha3_256, 32, data, False) == hashlib.sha3_256(data).digest()
    assert _c_hash(lib.qv_sha3_512, 64, data, False) == hashlib.sha3_512(data).digest()
    for outlen in (1, 32, 168, 169, 500):
        assert _c_hash(lib.qv_shake128, outlen, data, True) == hashlib.shake_128(data).digest(
            outlen)
        assert _c_hash(lib.qv_shake256, outlen, data, True) == hashlib.shake_256(data).digest(
            outlen)
