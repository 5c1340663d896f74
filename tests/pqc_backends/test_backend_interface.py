"""The C backend interface (pqc_backend.h) itself: names, sizes, handles, argument checks, and
the software backend dispatching to exactly the core's functions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantavirt._ffi import c_string, ffi, lib
from quantavirt.errors import code_of
from quantavirt.pqc.backend import liboqs_location

IDS = {"ML-KEM-512": 0x1100, "ML-KEM-768": 0x1101, "ML-KEM-1024": 0x1102,
       "ML-DSA-44": 0x2100, "ML-DSA-65": 0x2101, "ML-DSA-87": 0x2102}
SIZES = {"ML-KEM-512": (800, 1632, 768), "ML-KEM-768": (1184, 2400, 1088),
         "ML-KEM-1024": (1568, 3168, 1568), "ML-DSA-44": (1312, 2560, 2420),
         "ML-DSA-65": (1952, 4032, 3309), "ML-DSA-87": (2592, 4896, 4627)}


def _open(name: str) -> object:
    out = ffi.new("qv_pqc_backend **")
    rc = lib.qv_pqc_backend_open(name.encode(), ffi.NULL, out)
    assert rc == 0, rc
    return ffi.gc(out[0], lib.qv_pqc_backend_close)


def test_algorithm_names_ids_and_sizes() -> None:
    for name, alg in IDS.items():
        assert lib.qv_pqc_algorithm_id(name.encode()) == alg
        assert c_string(lib.qv_pqc_algorithm_name(alg)) == name
        assert lib.qv_pqc_is_kem(alg) == name.startswith("ML-KEM")
        sizes = ffi.new("size_t[3]")
        assert lib.qv_pqc_sizes(alg, sizes, sizes + 1, sizes + 2) == 0
        assert tuple(sizes) == SIZES[name]
    for bad in (b"ML-KEM-769", b"ml-kem-768", b"", b"SLH-DSA-SHA2-128s"):
        assert lib.qv_pqc_algorithm_id(bad) == code_of("PQC_ERR_ALGORITHM")
    assert lib.qv_pqc_algorithm_id(ffi.NULL) == code_of("PQC_ERR_ALGORITHM")
    assert lib.qv_pqc_algorithm_name(0x2200) == ffi.NULL
    assert lib.qv_pqc_sizes(0x1103, ffi.NULL, ffi.NULL, ffi.NULL) == code_of("PQC_ERR_ALGORITHM")


def test_open_by_name(tmp_path: Path) -> None:
    out = ffi.new("qv_pqc_backend **")
    for bad in (b"gpu", b"", b"Software"):
        assert lib.qv_pqc_backend_open(bad, ffi.NULL, out) == code_of("PQC_ERR_BACKEND")
        assert out[0] == ffi.NULL
    assert lib.qv_pqc_backend_open(ffi.NULL, ffi.NULL, out) == code_of("QV_ERR_INVAL")
    sw = _open("software")
    assert c_string(lib.qv_pqc_backend_name(sw)) == "software"
    assert lib.qv_pqc_backend_kind(sw) == lib.QV_PQC_BACKEND_SOFTWARE
    assert c_string(lib.qv_pqc_backend_device(sw)) == ""
    # an explicit device path that does not exist: no device
    rc = lib.qv_pqc_backend_open(b"quac100", b"/nonexistent/quac100_3", out)
    assert rc == code_of("QUAC100_ERR_NO_DEVICE")
    # a file that is no QUAC 100: the ioctl is refused -> not the right interface
    rc = lib.qv_pqc_backend_open(b"quac100", b"/dev/null", out)
    assert rc == code_of("QUAC100_ERR_VERSION")
    # neither a device nor a regular file (a FIFO would block a plain open): refused
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        rc = lib.qv_pqc_backend_open(b"quac100", str(path).encode(), out)
        assert rc == code_of("QUAC100_ERR_OPEN")
    if liboqs_location() is None:
        assert lib.qv_pqc_backend_open(b"liboqs", ffi.NULL, out) == code_of("PQC_ERR_BACKEND")


def test_software_dispatch_is_the_core() -> None:
    sw = _open("software")
    seed = os.urandom(64)
    pk, sk = ffi.new("uint8_t[1184]"), ffi.new("uint8_t[2400]")
    pk2, sk2 = ffi.new("uint8_t[1184]"), ffi.new("uint8_t[2400]")
    assert lib.qv_pqc_kem_keygen(sw, 0x1101, seed, 64, pk, 1184, sk, 2400) == 0
    assert lib.qv_mlkem_keygen_seed(768, seed, 64, pk2, 1184, sk2, 2400) == 0
    assert bytes(pk) == bytes(pk2) and bytes(sk) == bytes(sk2)
    ct, ss, ss2 = ffi.new("uint8_t[1088]"), ffi.new("uint8_t[32]"), ffi.new("uint8_t[32]")
    assert lib.qv_pqc_kem_encaps(sw, 0x1101, pk, 1184, ct, 1088, ss, 32) == 0
    assert lib.qv_mlkem_decaps(768, sk, 2400, ct, 1088, ss2, 32) == 0
    assert bytes(ss) == bytes(ss2)
    xi = os.urandom(32)
    spk, ssk = ffi.new("uint8_t[1312]"), ffi.new("uint8_t[2560]")
    assert lib.qv_pqc_sig_keygen(sw, 0x2100, xi, 32, spk, 1312, ssk, 2560) == 0
    sig, sig2 = ffi.new("uint8_t[2420]"), ffi.new("uint8_t[2420]")
    assert lib.qv_pqc_sig_sign(sw, 0x2100, ssk, 2560, b"msg", 3, b"ctx", 3, 1, sig, 2420) == 0
    assert lib.qv_mldsa_sign(44, sig2, ssk, b"msg", 3, b"ctx", 3, 1) == 0
    assert bytes(sig) == bytes(sig2)
    assert lib.qv_pqc_sig_verify(sw, 0x2100, spk, 1312, b"msg", 3, sig, 2420, b"ctx", 3) == 0
    assert lib.qv_pqc_sig_verify(sw, 0x2100, spk, 1312, b"msG", 3, sig, 2420, b"ctx", 3) == \
        code_of("PQC_ERR_VERIFY")


@pytest.mark.parametrize("call, code", [
    (lambda b: lib.qv_pqc_kem_keygen(b, 0x2101, ffi.NULL, 0, ffi.new("uint8_t[8]"), 8,
                                     ffi.new("uint8_t[8]"), 8), "PQC_ERR_ALGORITHM"),
    (lambda b: lib.qv_pqc_kem_keygen(b, 0x1101, ffi.NULL, 0, ffi.new("uint8_t[8]"), 8,
                                     ffi.new("uint8_t[8]"), 8), "PQC_ERR_SIZE"),
    (lambda b: lib.qv_pqc_kem_keygen(b, 0x1100, bytes(63), 63, ffi.new("uint8_t[800]"), 800,
                                     ffi.new("uint8_t[1632]"), 1632), "PQC_ERR_SEED"),
    (lambda b: lib.qv_pqc_kem_encaps(b, 0x1100, ffi.NULL, 800, ffi.new("uint8_t[768]"), 768,
                                     ffi.new("uint8_t[32]"), 32), "PQC_ERR_SIZE"),
    (lambda b: lib.qv_pqc_kem_decaps(b, 0x1100, bytes(1632), 1632, bytes(768), 768,
                                     ffi.new("uint8_t[32]"), 31), "PQC_ERR_SIZE"),
    (lambda b: lib.qv_pqc_sig_sign(b, 0x2100, bytes(2560), 2560, b"", 0, bytes(256), 256, 0,
                                   ffi.new("uint8_t[2420]"), 2420), "PQC_ERR_CONTEXT"),
    (lambda b: lib.qv_pqc_sig_sign(b, 0x2100, bytes(2560), 2560, ffi.NULL, 5, b"", 0, 0,
                                   ffi.new("uint8_t[2420]"), 2420), "PQC_ERR_SIZE"),
    (lambda b: lib.qv_pqc_sig_verify(b, 0x2100, bytes(1311), 1311, b"", 0, bytes(2420), 2420,
                                     b"", 0), "PQC_ERR_SIZE"),
    (lambda b: lib.qv_pqc_sig_verify(b, 0x1100, bytes(1312), 1312, b"", 0, bytes(2420), 2420,
                                     b"", 0), "PQC_ERR_ALGORITHM"),
    (lambda b: lib.qv_pqc_kem_encaps_batch(ffi.NULL, 0x1100, 1, bytes(800),
                                           ffi.new("uint8_t[768]"), ffi.new("uint8_t[32]"),
                                           ffi.NULL), "QV_ERR_INVAL"),
    (lambda b: lib.qv_quac100_status(b, ffi.new("uint32_t *")), "PQC_ERR_BACKEND"),
])
def test_argument_checks(call, code: str) -> None:  # type: ignore[no-untyped-def]
    assert call(_open("software")) == code_of(code)
