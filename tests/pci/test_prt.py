"""The DSDT's PCI interrupt routing (\\_SB.PCI0._PRT), read back with iasl: INTA..INTD of every
bus-0 device 1..31 to IOAPIC GSIs 16..23 (the swizzle the engine uses for INTx)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from quantavirt import boot
from quantavirt._ffi import lib

RAM = 64 << 20


def dsdt_bytes(mem: bytearray) -> bytes:
    for at in range(lib.QV_ACPI_BASE, lib.QV_ACPI_END - 36, 4):
        if mem[at:at + 4] == b"DSDT":
            length = struct.unpack_from("<I", mem, at + 4)[0]
            return bytes(mem[at:at + length])
    raise AssertionError("no DSDT in the ACPI area")


def test_prt_routes_every_slot_and_pin(tmp_path: Path) -> None:
    if not shutil.which("iasl"):
        pytest.skip("iasl (acpica-tools) not installed")
    mem = bytearray(RAM)
    boot.build_acpi(mem, boot.memory_layout(RAM), 1)
    (tmp_path / "dsdt.dat").write_bytes(dsdt_bytes(mem))
    run = subprocess.run(["iasl", "-d", "dsdt.dat"], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    dsl = re.sub(r"//[^\n]*", "", (tmp_path / "dsdt.dsl").read_text())
    prt = dsl[dsl.index("Name (_PRT"):]
    assert prt.startswith("Name (_PRT, Package (0x7C)")
    entries = re.findall(
        r"Package \(0x04\)\s*\{\s*(0x[0-9A-F]*FFFF),\s*(\w+),\s*(\w+),\s*(\w+)\s*\}", prt)
    assert len(entries) == 31 * 4

    def num(tok: str) -> int:
        return {"Zero": 0, "One": 1}[tok] if tok in ("Zero", "One") else int(tok, 16)

    seen = {(num(a) >> 16, num(b)): (num(c), num(d)) for a, b, c, d in entries}
    for dev in range(1, 32):
        for pin in range(4):
            assert seen[(dev, pin)] == (0, 16 + (dev + pin) % 8)
    # it sits inside the root bridge
    assert dsl.index("Device (PCI0)") < dsl.index("Name (_PRT")
