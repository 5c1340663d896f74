"""memory.max_size in the guest-physical layout: the hot-add range sits above all RAM, 1 GiB
aligned, is never RAM in the e820 map and never overlaps a device; a Linux boot through the
engine describes exactly that map."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from quantavirt import boot
from quantavirt._ffi import ffi, lib
from quantavirt.engine import Machine
from quantavirt.errors import QVError, code_of

GIB = 1 << 30
MIB = 1 << 20


def _layout(ram: int, max_size: int) -> object:
    layout = boot.memory_layout(ram)
    err = ffi.new("char[256]")
    rc = lib.qv_layout_set_hotplug(layout, max_size, err, len(err))
    if rc:
        raise QVError(rc, ffi.string(err).decode())
    return layout


def _overlaps(a: int, asize: int, b: int, bsize: int) -> bool:
    return a < b + bsize and b < a + asize


@pytest.mark.parametrize("ram, max_size, base", [
    (512 * MIB, 4 * GIB, 4 * GIB),            # all RAM below the hole: hot-add from 4 GiB
    (3 * GIB + 512 * MIB, 8 * GIB, 5 * GIB),  # 512 MiB above 4 GiB: next 1 GiB boundary
    (5 * GIB, 64 * GIB, 6 * GIB),             # already aligned
    (4 << 40, 4 << 40, 0),                    # max_size = size: nothing reserved
])
def test_hot_add_range_is_above_ram_and_not_in_the_e820_map(ram: int, max_size: int,
                                                             base: int) -> None:
    layout = _layout(ram, max_size)
    size = max_size - ram
    assert (layout.hotplug_base, layout.hotplug_size) == (base, size)
    e820 = boot.e820_map(layout)
    assert sum(e.size for e in e820 if e.type == lib.QV_E820_RAM) <= ram
    if size:
        assert base % lib.QV_LAYOUT_HOTPLUG_ALIGN == 0
        assert base >= lib.QV_LAYOUT_4G + layout.high_ram_size
        for e in e820:
            assert not _overlaps(e.addr, e.size, base, size), e
        # Every device window lies below 4 GiB.
        for dev, dsize in ((layout.ecam_base, lib.qv_layout_ecam_size(layout)),
                           (layout.ioapic_base, 0x1000), (layout.lapic_base, 0x1000)):
            assert not _overlaps(dev, dsize, base, size)


@pytest.mark.parametrize("max_size", [128 * MIB, (4 << 40) + GIB, 4 * GIB + 1])
def test_bad_max_size_is_refused_with_its_path(max_size: int) -> None:
    with pytest.raises(QVError) as e:
        _layout(256 * MIB, max_size)
    assert e.value.name == "QV_ERR_INVAL"
    assert "memory.max_size" in str(e.value)


def test_a_hand_made_range_inside_ram_fails_validation() -> None:
    layout = _layout(5 * GIB, 16 * GIB)
    layout.hotplug_base = 4 * GIB  # RAM goes on to 6 GiB
    err = ffi.new("char[256]")
    assert lib.qv_layout_validate(layout, err, len(err)) == code_of("QV_ERR_INVAL")
    assert b"memory.max_size" in ffi.string(err)
    layout.hotplug_base = 6 * GIB + MIB  # not 1 GiB aligned
    assert lib.qv_layout_validate(layout, err, len(err)) == code_of("QV_ERR_INVAL")
    layout.hotplug_base = 6 * GIB
    assert lib.qv_layout_validate(layout, err, len(err)) == 0


@pytest.mark.kvm
def test_linux_boot_through_the_engine_keeps_the_hole_out_of_the_memory_map(
        pvh_elf: Path) -> None:
    ram, max_size = 256 * MIB, 16 * GIB
    with Machine(memory=ram, max_memory=max_size) as m:
        base, size = m.hotplug_range()
        assert (base, size) == (4 * GIB, max_size - ram)
        m.load_linux(str(pvh_elf), None, "console=ttyS0")
        si = m.read_phys(lib.QV_BOOT_START_INFO_ADDR, 56)
        magic, _, _, _, _, _, _, memmap, nmap = struct.unpack_from("<IIIIQQQQI", si)
        assert magic == 0x336EC578
        entries = [struct.unpack_from("<QQI", m.read_phys(memmap + 24 * i, 20))
                   for i in range(nmap)]
    assert entries == [(e.addr, e.size, e.type)
                       for e in boot.e820_map(boot.memory_layout(ram))]
    assert all(not _overlaps(a, s, base, size) for a, s, _ in entries)
