"""The AML writer: encodings checked against the ACPI spec's rules (written out here
independently), and a large DSDT grown through the device hook, disassembled by iasl."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest

from quantavirt import boot
from quantavirt._ffi import ffi, lib
from quantavirt.errors import QVError, code_of

MIB = 1 << 20


class Aml:
    def __init__(self, cap: int = 65536) -> None:
        self.buf = ffi.new("uint8_t[]", cap)
        self.a = ffi.new("struct qv_aml *")
        lib.qv_aml_init(self.a, self.buf, cap)

    def done(self) -> bytes:
        n = lib.qv_aml_finish(self.a)
        assert n >= 0, n
        return bytes(ffi.buffer(self.buf, n))

    def err(self) -> int:
        return int(lib.qv_aml_finish(self.a))


def pkg_length(total_without_header: int) -> bytes:
    """PkgLength per ACPI 6.5 section 20.2.4, for a block whose content has this many bytes."""
    for n in range(1, 5):
        total = total_without_header + n
        if n == 1 and total <= 0x3F:
            return bytes([total])
        if n > 1 and total < 1 << (4 + 8 * (n - 1)):
            out = [((n - 1) << 6) | (total & 0xF)]
            out += [(total >> (4 + 8 * i)) & 0xFF for i in range(n - 1)]
            return bytes(out)
    raise ValueError(total_without_header)


@pytest.mark.parametrize("size", [0, 1, 58, 59, 60, 61, 62, 200, 4088, 4089, 4090, 4093, 5000,
                                  70000])
def test_buffer_pkg_length(size: int) -> None:
    data = bytes(i & 0xFF for i in range(size))
    aml = Aml(cap=size + 64)
    lib.qv_aml_buffer(aml.a, data, size)
    out = aml.done()
    size_enc = Aml()
    lib.qv_aml_integer(size_enc.a, size)
    body = size_enc.done() + data
    assert out == b"\x11" + pkg_length(len(body)) + body


@pytest.mark.parametrize(("value", "encoding"), [
    (0, b"\x00"), (1, b"\x01"), (2, b"\x0a\x02"), (0xFF, b"\x0a\xff"),
    (0x100, b"\x0b\x00\x01"), (0xFFFF, b"\x0b\xff\xff"), (0x10000, b"\x0c\x00\x00\x01\x00"),
    (0xFFFFFFFF, b"\x0c\xff\xff\xff\xff"), (1 << 32, b"\x0e" + struct.pack("<Q", 1 << 32)),
])
def test_integers(value: int, encoding: bytes) -> None:
    aml = Aml()
    lib.qv_aml_integer(aml.a, value)
    assert aml.done() == encoding


@pytest.mark.parametrize(("path", "encoding"), [
    ("_HID", b"_HID"), ("COM1", b"COM1"), ("S5", b"S5__"), ("\\_S5", b"\\_S5_"),
    ("\\_SB.PCI0", b"\\\x2e_SB_PCI0"), ("_SB.PCI0.S08", b"\x2f\x03_SB_PCI0S08_"),
    ("^COM1", b"^COM1"), ("^^X", b"^^X___"), ("\\", b"\\\x00"),
])
def test_name_strings(path: str, encoding: bytes) -> None:
    aml = Aml()
    lib.qv_aml_name_string(aml.a, path.encode())
    assert aml.done() == encoding


@pytest.mark.parametrize("path", ["com1", "TOOLONG", "1ABC", "A..B", "_SB.", "A-B"])
def test_bad_names_fail(path: str) -> None:
    aml = Aml()
    lib.qv_aml_name_string(aml.a, path.encode())
    assert aml.err() == code_of("QV_ERR_INVAL")


def test_eisaid_and_errors() -> None:
    aml = Aml()
    lib.qv_aml_eisaid(aml.a, b"PNP0A03")
    assert aml.done() == b"\x0c" + struct.pack("<I", 0x030AD041)
    for bad in (b"PNP0A0", b"pnp0A03", b"PNP0A0G"):
        aml = Aml()
        lib.qv_aml_eisaid(aml.a, bad)
        assert aml.err() == code_of("QV_ERR_INVAL")


def test_unclosed_block_and_overflow() -> None:
    aml = Aml()
    lib.qv_aml_scope_begin(aml.a, b"\\_SB")
    assert aml.err() < 0
    aml = Aml(cap=8)
    lib.qv_aml_string(aml.a, b"much longer than eight bytes")
    assert aml.err() == code_of("QV_ERR_NOMEM")


def test_large_dsdt_through_hook(tmp_path: Path) -> None:
    """Sixty devices from the hook push \\_SB past 4 KiB (three-byte PkgLength)."""

    @ffi.callback("int(struct qv_aml *, void *)")
    def hook(a, _opaque):  # noqa: ANN001, ANN202
        for i in range(60):
            lib.qv_aml_device_begin(a, f"D{i:03d}".encode())
            lib.qv_aml_name(a, b"_HID")
            lib.qv_aml_string(a, b"QVRT0001")
            lib.qv_aml_name(a, b"_UID")
            lib.qv_aml_integer(a, i)
            res = ffi.new("struct qv_res *")
            lib.qv_res_dword_mem(res, 0xC0000000 + i * 0x1000, 0xC0000FFF + i * 0x1000)
            lib.qv_res_irq(res, 1 << (i % 16))
            lib.qv_res_end(res)
            lib.qv_aml_name(a, b"_CRS")
            lib.qv_aml_buffer(a, res.buf, res.len)
            lib.qv_aml_method_begin(a, b"_STA", 0, 0)
            lib.qv_aml_return(a)
            lib.qv_aml_integer(a, 0x0F)
            lib.qv_aml_end(a)
            lib.qv_aml_end(a)
        return 0

    layout = boot.memory_layout(64 * MIB)
    mem = bytearray(2 * MIB)
    cfg = ffi.new("struct qv_acpi_config *")
    lib.qv_acpi_config_init(cfg, 2)
    cfg.dsdt_hook = hook
    err = ffi.new("char[256]")
    assert lib.qv_acpi_build(ffi.from_buffer("uint8_t[]", mem), len(mem), layout, cfg, err,
                             256) > 4096
    fadt_at = next(at for at in range(0xE0000, 0x100000, 16) if mem[at:at + 4] == b"FACP")
    dsdt_at = struct.unpack_from("<Q", mem, fadt_at + 140)[0]
    assert mem[dsdt_at:dsdt_at + 4] == b"DSDT"
    length = struct.unpack_from("<I", mem, dsdt_at + 4)[0]
    assert length > 4096
    dsdt = bytes(mem[dsdt_at:dsdt_at + length])
    assert sum(dsdt) % 256 == 0
    (tmp_path / "DSDT.dat").write_bytes(dsdt)
    run = subprocess.run(["iasl", "-d", "DSDT.dat"], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    text = (tmp_path / "DSDT.dsl").read_text()
    assert len(re.findall(r"Device \(D\d{3}\)", text)) == 60
    assert "Device (COM1)" in text and "Device (PCI0)" in text and "\\_S5" in text
    assert text.count("Return (0x0F)") == 61  # COM1's _STA and the sixty hooked ones

    @ffi.callback("int(struct qv_aml *, void *)")
    def failing(_a, _opaque):  # noqa: ANN001, ANN202
        return code_of("QV_ERR_NOTSUP")

    cfg.dsdt_hook = failing
    assert lib.qv_acpi_build(ffi.from_buffer("uint8_t[]", mem), len(mem), layout, cfg, err,
                             256) == code_of("QV_ERR_NOTSUP")
    assert b"hook" in ffi.string(err)
    with pytest.raises(QVError):
        boot.raise_for(code_of("QV_ERR_NOTSUP"), err)
