"""ACPI tables: walked from the RSDP like a guest does, checksummed here and disassembled by
iasl (acpica-tools), the reference implementation's own parser."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from quantavirt import boot, cpuid
from quantavirt._ffi import lib
from quantavirt.errors import QVError

MIB = 1 << 20
RAM = 64 * MIB


def tables_from_rsdp(mem: bytearray) -> dict[str, bytes]:
    """Follow RSDP -> XSDT -> tables, FADT -> DSDT/FACS, checking every checksum on the way."""
    rsdp_at = lib.QV_ACPI_RSDP_ADDR
    rsdp = bytes(mem[rsdp_at:rsdp_at + 36])
    assert rsdp[:8] == b"RSD PTR "
    assert sum(rsdp[:20]) % 256 == 0 and sum(rsdp) % 256 == 0
    assert rsdp[15] == 2
    rsdt_addr, length, xsdt_addr = struct.unpack_from("<IIQ", rsdp, 16)
    assert length == 36

    def table(addr: int) -> bytes:
        length = struct.unpack_from("<I", mem, addr + 4)[0]
        t = bytes(mem[addr:addr + length])
        assert sum(t) % 256 == 0, f"bad checksum in {t[:4]!r}"
        return t

    out = {"RSDP": rsdp}
    xsdt = table(xsdt_addr)
    rsdt = table(rsdt_addr)
    out["XSDT"], out["RSDT"] = xsdt, rsdt
    x_entries = [v for (v,) in struct.iter_unpack("<Q", xsdt[36:])]
    r_entries = [v for (v,) in struct.iter_unpack("<I", rsdt[36:])]
    assert x_entries == r_entries
    for addr in x_entries:
        t = table(addr)
        out[t[:4].decode()] = t
    fadt = out["FACP"]
    facs_addr, dsdt_addr = struct.unpack_from("<II", fadt, 36)
    assert struct.unpack_from("<QQ", fadt, 132) == (facs_addr, dsdt_addr)
    assert facs_addr % 64 == 0
    out["FACS"] = bytes(mem[facs_addr:facs_addr + 64])
    assert out["FACS"][:4] == b"FACS"
    out["DSDT"] = table(dsdt_addr)
    for addr in [rsdp_at, facs_addr, dsdt_addr, *x_entries]:
        assert lib.QV_ACPI_BASE <= addr < lib.QV_ACPI_END
    return out


def disassemble(tmp: Path, name: str, data: bytes) -> str:
    """iasl -d of one table; returns the .dsl text plus iasl's own messages."""
    path = tmp / f"{name}.dat"
    path.write_bytes(data)
    run = subprocess.run(["iasl", "-d", str(path)], cwd=tmp, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return (tmp / f"{name}.dsl").read_text() + run.stdout + run.stderr


@pytest.fixture(scope="module")
def iasl() -> str:
    path = shutil.which("iasl")
    assert path, "iasl missing: scripts/setup installs acpica-tools"
    return path


def build(cpus: int, apic_ids: list[int] | None = None, **kw: bool) -> tuple[bytearray, object]:
    mem = bytearray(RAM)
    layout = boot.memory_layout(RAM, ecam_bus_end=kw.pop("ecam_bus_end", 255))
    used = boot.build_acpi(mem, layout, cpus, apic_ids, **kw)
    assert 0 < used <= lib.QV_ACPI_END - lib.QV_ACPI_BASE
    return mem, layout


@pytest.mark.parametrize("cpus", [1, 2, 7])
def test_tables_disassemble(iasl: str, tmp_path: Path, cpus: int) -> None:
    mem, layout = build(cpus)
    tables = tables_from_rsdp(mem)
    assert set(tables) == {"RSDP", "XSDT", "RSDT", "FACP", "APIC", "MCFG", "DSDT", "FACS"}
    for name, data in tables.items():
        if name == "RSDP":  # no standard header: iasl reads it only from a full dump
            continue
        text = disassemble(tmp_path, name, data)
        assert "Incorrect checksum" not in text, name
        if name == "DSDT":
            assert 'DefinitionBlock ("", "DSDT"' in text
        else:
            assert re.search(rf'Signature : "{name}"', text), name
        assert "Error" not in text or name == "DSDT" and "0 Errors" in text, text

    madt = disassemble(tmp_path, "APIC", tables["APIC"])
    assert madt.count("[Processor Local APIC]") == cpus
    assert madt.count("[I/O APIC]") == 1
    overrides = re.findall(r"Source : ([0-9A-F]{2})\n.*?Interrupt : ([0-9A-F]{8})\n"
                           r".*?Flags \(decoded below\) : ([0-9A-F]{4})", madt)
    assert [(int(a, 16), int(b, 16), int(c, 16)) for a, b, c in overrides] == [
        (0, 2, 0),        # PIT IRQ0 -> GSI 2
        (9, 9, 0x000D),   # SCI: level, active high
    ]

    fadt = disassemble(tmp_path, "FACP", tables["FACP"])
    assert "Hardware Reduced (V5) : 0" in fadt
    assert re.search(r"PM1A Control Block Address : 00000604", fadt)
    assert re.search(r"PM1A Event Block Address : 00000600", fadt)
    assert "Reset Register Supported (V2) : 1" in fadt
    assert re.search(r"Address : 0000000000000CF9", fadt)
    assert "Value to cause reset : 06" in fadt
    assert "SCI Interrupt : 0009" in fadt
    # The power button is the PM1 fixed feature (the graceful stop presses it): flag clear.
    assert re.search(r"Power Button \(V1\) : 0", fadt), fadt
    assert re.search(r"Sleep Button \(V1\) : 1", fadt), fadt

    mcfg = disassemble(tmp_path, "MCFG", tables["MCFG"])
    assert "Base Address : 00000000E0000000" in mcfg
    assert "Start Bus Number : 00" in mcfg and "End Bus Number : FF" in mcfg
    assert layout.ecam_base == 0xE0000000

    dsdt = re.sub(r"//[^\n]*", "", disassemble(tmp_path, "DSDT", tables["DSDT"]))
    assert 'DefinitionBlock ("", "DSDT", 2, "QVIRT "' in dsdt
    assert "Name (\\_S5, Package (0x04)" in dsdt
    s5 = dsdt[dsdt.index("\\_S5"):]
    assert re.search(r"\{\s*0x05,\s*0x05,\s*Zero,\s*Zero\s*\}", s5)
    assert "Device (COM1)" in dsdt and 'EisaId ("PNP0501")' in dsdt
    assert re.search(r"IO \(Decode16,\s*0x03F8,\s*0x03F8,\s*0x01,\s*0x08", dsdt)
    assert re.search(r"IRQNoFlags \(\)\s*\{4\}", dsdt)
    assert re.search(r"Method \(_STA, 0, NotSerialized\).*?Return \(0x0F\)", dsdt, re.S)
    assert "Device (PCI0)" in dsdt and 'EisaId ("PNP0A08")' in dsdt
    assert re.search(r"WordBusNumber.*?0x0000,.*?0x0000,.*?0x00FF,", dsdt, re.S)
    assert re.search(r"DWordMemory.*?0xC0000000,.*?0xDFFFFFFF,", dsdt, re.S)
    # The ECAM window as a motherboard resource, so Linux accepts the MCFG entry.
    assert 'EisaId ("PNP0C02")' in dsdt
    assert re.search(r"Memory32Fixed \(ReadWrite,\s*0xE0000000,\s*0x10000000,", dsdt)


def test_checksum_check_can_fail(iasl: str, tmp_path: Path) -> None:
    """The assertions above would notice a bad table: iasl and our walker both do."""
    mem, _ = build(2)
    tables = tables_from_rsdp(mem)
    bad = bytearray(tables["APIC"])
    bad[44] ^= 0x01
    assert "Incorrect checksum" in disassemble(tmp_path, "BAD", bytes(bad))
    bad_dsdt = bytearray(tables["DSDT"])
    bad_dsdt[40] ^= 0x01
    assert "Incorrect checksum" in disassemble(tmp_path, "BADDSDT", bytes(bad_dsdt))
    at = struct.unpack_from("<Q", mem, lib.QV_ACPI_RSDP_ADDR + 24)[0]
    mem[at + 40] ^= 0x01
    with pytest.raises(AssertionError):
        tables_from_rsdp(mem)


def test_madt_uses_topology_apic_ids(iasl: str, tmp_path: Path) -> None:
    # 2 sockets x 3 cores x 2 threads: core ids take 2 bits, so ids have gaps.
    ids = [cpuid.apic_id(2, 3, 2, i) for i in range(12)]
    assert ids == [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]
    mem, _ = build(12, ids)
    madt = disassemble(tmp_path, "APIC", tables_from_rsdp(mem)["APIC"])
    found = [int(x, 16) for x in re.findall(r"Local Apic ID : ([0-9A-F]{2})", madt)]
    assert found == ids


def test_x2apic_entries_for_large_ids(iasl: str, tmp_path: Path) -> None:
    ids = [0, 1, 255, 300]
    mem, _ = build(4, ids)
    madt = disassemble(tmp_path, "APIC", tables_from_rsdp(mem)["APIC"])
    assert madt.count("[Processor Local APIC]") == 2
    assert madt.count("[Processor Local x2APIC]") == 2
    assert "Processor x2Apic ID : 0000012C" in madt


def test_without_pci_and_com1(iasl: str, tmp_path: Path) -> None:
    mem, _ = build(1, com1=False, pci_host_bridge=False, ecam=False)
    tables = tables_from_rsdp(mem)
    assert "MCFG" not in tables
    dsdt = disassemble(tmp_path, "DSDT", tables["DSDT"])
    assert "COM1" not in dsdt and "PCI0" not in dsdt and "PNP0C02" not in dsdt
    assert "\\_S5" in dsdt


def test_bad_configs() -> None:
    layout = boot.memory_layout(RAM)
    with pytest.raises(QVError) as e:
        boot.build_acpi(bytearray(RAM), layout, 0)
    assert e.value.path == "cpu.count"
    with pytest.raises(QVError) as e:
        boot.build_acpi(bytearray(RAM), layout, 2, [3, 3])
    assert e.value.name == "QV_ERR_INVAL" and "share APIC id" in e.value.message
    with pytest.raises(QVError):
        boot.build_acpi(bytearray(512 * 1024), layout, 1)


def test_256_cpus_fit() -> None:
    mem, _ = build(256)
    madt = tables_from_rsdp(mem)["APIC"]
    assert len(madt) > 256 * 8


def test_dsdt_runs_in_acpica_interpreter(iasl: str, tmp_path: Path) -> None:
    """acpiexec (ACPICA's own interpreter, as in the Linux kernel) loads the DSDT and
    evaluates what a kernel asks for when it powers off and enumerates COM1."""
    mem, _ = build(2)
    (tmp_path / "DSDT.dat").write_bytes(tables_from_rsdp(mem)["DSDT"])
    cmds = "evaluate \\_S5; evaluate \\_SB.COM1._STA; evaluate \\_SB.COM1._CRS; " \
           "evaluate \\_SB.PCI0._HID"
    run = subprocess.run(["acpiexec", "-b", cmds, "DSDT.dat"], cwd=tmp_path,
                         capture_output=True, text=True, check=False, timeout=60)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "AE_" not in out.replace("AE_OK", ""), out
    s5 = out[out.index("Evaluation of \\_S5"):]
    assert re.search(r"Contains 4 Elements:\s*\[Integer\] = 0+5\s*\[Integer\] = 0+5", s5)
    assert re.search(r"COM1._STA returned.*?\[Integer\] = 0+F\b", out, re.S)
    assert "47 01 F8 03 F8 03 01 08 22 10 00 79" in out  # IO 0x3f8 x8, IRQ 4, end tag
    assert re.search(r"PCI0._HID returned.*?\[Integer\] = 0+80AD041", out, re.S)  # PNP0A08
    assert "No outstanding allocations" in out


def test_acpica_sleep_s5(iasl: str, tmp_path: Path) -> None:
    """ACPICA's own S5 path (what Linux' acpi_power_off runs) over our FADT and DSDT: it finds
    the PM1 registers and \\_S5 and goes through the sleep sequence without an error."""
    mem, _ = build(2)
    tables = tables_from_rsdp(mem)
    (tmp_path / "FACP.dat").write_bytes(tables["FACP"])
    (tmp_path / "DSDT.dat").write_bytes(tables["DSDT"])
    run = subprocess.run(["acpiexec", "-b", "sleep 5", "FACP.dat", "DSDT.dat"], cwd=tmp_path,
                         capture_output=True, text=True, check=False, timeout=60)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "Register values for sleep state S5: Sleep-A: 05, Sleep-B: 05" in out, out
    assert "Entering sleep state [S5]" in out
    assert "Return from sleep (S5)" in out
    assert "ACPI Error" not in out, out
