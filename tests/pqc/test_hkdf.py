"""quantavirt.pqc.hkdf_sha3_256 (RFC 5869 over SHA3-256, OpenSSL's EVP_KDF in the core)
against the `cryptography` package's HKDF(hashes.SHA3_256()) on random and edge cases, plus
its errors from Python and from the C entry point."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

import quantavirt.pqc
from quantavirt._ffi import ffi, lib
from quantavirt.errors import QVError, code_of
from quantavirt.pqc import hkdf_sha3_256

MAX = 255 * 32


def reference(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA3_256(), length=length, salt=salt or None,
                info=info).derive(ikm)


def test_exported_from_pqc() -> None:
    assert quantavirt.pqc.hkdf_sha3_256 is hkdf_sha3_256
    assert "hkdf_sha3_256" in quantavirt.pqc.__all__
    assert int(lib.QV_HKDF_SHA3_256_MAX_LENGTH) == MAX


def test_random_cases_match_cryptography() -> None:
    rng = random.Random(5869)
    for _ in range(600):
        ikm = rng.randbytes(rng.choice([0, 1, 16, 32, 64, rng.randrange(0, 400)]))
        salt = rng.randbytes(rng.choice([0, 16, 32, 135, 136, 137, rng.randrange(0, 400)]))
        info = rng.randbytes(rng.choice([0, 1, 30, rng.randrange(0, 600)]))
        length = rng.choice([1, 16, 31, 32, 33, 64, 100, rng.randrange(1, MAX + 1)])
        got = hkdf_sha3_256(ikm, salt=salt, info=info, length=length)
        assert len(got) == length
        assert got == reference(ikm, salt, info, length), (len(ikm), len(salt), len(info), length)


@pytest.mark.parametrize("length", [1, 31, 32, 33, 63, 64, 65, MAX - 1, MAX])
def test_length_edges(length: int) -> None:
    ikm, salt, info = b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA))
    assert hkdf_sha3_256(ikm, salt=salt, info=info, length=length) == \
        reference(ikm, salt, info, length)


def test_output_is_a_prefix_of_longer_output() -> None:
    """HKDF-Expand's T(1) || T(2) || ...: a shorter length is a prefix of a longer one."""
    full = hkdf_sha3_256(b"ikm", salt=b"salt", info=b"info", length=MAX)
    for length in (1, 32, 33, 1000, MAX):
        assert hkdf_sha3_256(b"ikm", salt=b"salt", info=b"info", length=length) == full[:length]


def test_empty_inputs_and_default_salt() -> None:
    # RFC 5869 2.2: a missing salt is HashLen zeros; the default salt is empty.
    zero_salt = hkdf_sha3_256(b"secret", salt=bytes(32), info=b"x")
    assert hkdf_sha3_256(b"secret", info=b"x") == zero_salt
    assert hkdf_sha3_256(b"secret", salt=b"", info=b"x") == zero_salt
    assert hkdf_sha3_256(b"") == reference(b"", b"", b"", 32)
    assert hkdf_sha3_256(b"", salt=b"s", info=b"i", length=MAX) == reference(b"", b"s", b"i", MAX)
    assert hkdf_sha3_256(b"k") != hkdf_sha3_256(b"k", info=b"\x00")


def test_matches_extract_then_expand() -> None:
    """The two RFC 5869 steps separately: PRK = HMAC-SHA3-256(salt, ikm) (OpenSSL through
    `cryptography`), then HKDF-Expand."""
    from cryptography.hazmat.primitives import hmac

    ikm, salt, info = bytes(range(22)), bytes(range(0x60, 0xB0)), bytes(range(0xB0, 0x100))
    mac = hmac.HMAC(salt, hashes.SHA3_256())
    mac.update(ikm)
    prk = mac.finalize()
    okm = HKDFExpand(algorithm=hashes.SHA3_256(), length=82, info=info).derive(prk)
    assert hkdf_sha3_256(ikm, salt=salt, info=info, length=82) == okm


def test_bytes_like_inputs() -> None:
    want = hkdf_sha3_256(b"ikm", salt=b"salt", info=b"info", length=40)
    got = hkdf_sha3_256(bytearray(b"ikm"), salt=memoryview(b"salt"), info=bytearray(b"info"),
                        length=40)
    assert got == want
    assert isinstance(got, bytes)


@pytest.mark.parametrize("length", [0, -1, MAX + 1, 10**12])
def test_bad_length_is_pqc_err_size(length: int) -> None:
    with pytest.raises(QVError) as excinfo:
        hkdf_sha3_256(b"ikm", length=length)
    assert excinfo.value.name == "PQC_ERR_SIZE"
    assert excinfo.value.path == "length"
    assert "8160" in excinfo.value.message


@pytest.mark.parametrize("length", [32.0, "32", None, True])
def test_non_int_length(length: object) -> None:
    with pytest.raises(QVError) as excinfo:
        hkdf_sha3_256(b"ikm", length=length)  # type: ignore[arg-type]
    assert excinfo.value.name == "QV_ERR_INVAL"


@pytest.mark.parametrize("arg", ["ikm", "salt", "info"])
@pytest.mark.parametrize("value", ["text", None, 7, [1, 2]])
def test_non_bytes_inputs(arg: str, value: object) -> None:
    kwargs: dict[str, object] = {"ikm": b"k", "salt": b"", "info": b""}
    kwargs[arg] = value
    ikm = kwargs.pop("ikm")
    with pytest.raises(QVError) as excinfo:
        hkdf_sha3_256(ikm, **kwargs)  # type: ignore[arg-type]
    assert excinfo.value.name == "QV_ERR_INVAL"
    assert excinfo.value.path == arg


def test_c_entry_point_checks() -> None:
    out = ffi.new("uint8_t[]", MAX + 1)
    ok = lib.qv_hkdf_sha3_256(b"k", 1, ffi.NULL, 0, ffi.NULL, 0, out, 32)
    assert ok == 0
    assert bytes(ffi.buffer(out, 32)) == reference(b"k", b"", b"", 32)
    size, inval = code_of("PQC_ERR_SIZE"), code_of("QV_ERR_INVAL")
    assert lib.qv_hkdf_sha3_256(b"k", 1, ffi.NULL, 0, ffi.NULL, 0, out, 0) == size
    assert lib.qv_hkdf_sha3_256(b"k", 1, ffi.NULL, 0, ffi.NULL, 0, out, MAX + 1) == size
    assert lib.qv_hkdf_sha3_256(b"k", 1, ffi.NULL, 0, ffi.NULL, 0, ffi.NULL, 32) == inval
    assert lib.qv_hkdf_sha3_256(ffi.NULL, 5, ffi.NULL, 0, ffi.NULL, 0, out, 32) == inval
    assert lib.qv_hkdf_sha3_256(b"k", 1, ffi.NULL, 3, ffi.NULL, 0, out, 32) == inval
    assert lib.qv_hkdf_sha3_256(b"k", 1, ffi.NULL, 0, ffi.NULL, 9, out, 32) == inval
    assert lib.qv_hkdf_sha3_256(ffi.NULL, 0, ffi.NULL, 0, ffi.NULL, 0, out, MAX) == 0
    assert bytes(ffi.buffer(out, MAX)) == reference(b"", b"", b"", MAX)
