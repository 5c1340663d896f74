"""The bzImage loader on Debian's stock cloud kernel and on hostile variants of it."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from quantavirt import boot
from quantavirt._ffi import lib
from quantavirt.errors import QVError

MIB = 1 << 20
RAM = 128 * MIB
ZP = lib.QV_BOOT_ZERO_PAGE_ADDR


def u8(b: bytes | bytearray, off: int) -> int:
    return b[off]


def u16(b: bytes | bytearray, off: int) -> int:
    return struct.unpack_from("<H", b, off)[0]


def u32(b: bytes | bytearray, off: int) -> int:
    return struct.unpack_from("<I", b, off)[0]


def u64(b: bytes | bytearray, off: int) -> int:
    return struct.unpack_from("<Q", b, off)[0]


@pytest.fixture
def layout():  # noqa: ANN201
    return boot.memory_layout(RAM)


@pytest.fixture
def mem() -> bytearray:
    return bytearray(RAM)


def test_stock_kernel_loads(stock_kernel: Path, layout, mem: bytearray, tmp_path: Path) -> None:
    img = stock_kernel.read_bytes()
    initrd = os.urandom(3 * MIB + 123)
    (tmp_path / "initrd").write_bytes(initrd)
    cmdline = "console=ttyS0 panic=-1 noxsave"
    st = boot.load_kernel(mem, layout, stock_kernel, tmp_path / "initrd", cmdline)

    setup_size = (img[0x1F1] + 1) * 512
    pref = u64(img, 0x258)
    init_size = u32(img, 0x260)
    assert img[0x202:0x206] == b"HdrS" and u16(img, 0x206) >= 0x020C
    # The protected-mode payload sits at its preferred address, byte for byte.
    assert st.kernel_start == pref
    assert mem[pref:pref + len(img) - setup_size] == img[setup_size:]
    assert st.kernel_end == pref + init_size

    # CPU state for the 64-bit entry.
    assert st.mode == lib.QV_BOOT_LONG64
    assert st.kernel_format == 1
    assert st.rip == pref + 0x200
    assert st.rsi == ZP
    assert st.code_selector == 0x10 and st.data_selector == 0x18
    assert st.cr0 & 0x80000001 == 0x80000001  # PG, PE
    assert st.cr4 & 0x20 and st.efer & 0x500 == 0x500
    assert st.cr3 == lib.QV_BOOT_PML4_ADDR

    # The zero page: a copy of the setup header plus what the loader fills in.
    hdr_end = 0x202 + img[0x201]
    zp = mem[ZP:ZP + 4096]
    changed = {0x1FA, 0x1FB, 0x210, 0x211, *range(0x214, 0x220), *range(0x228, 0x22C)}
    for off in range(0x1F1, hdr_end):
        if off not in changed:
            assert zp[off] == img[off], hex(off)
    assert zp[0x210] == 0xFF  # type_of_loader
    assert zp[0x211] & 0x01  # LOADED_HIGH
    assert u16(zp, 0x1FA) == 0xFFFF
    cmd_ptr = u32(zp, 0x228)
    assert cmd_ptr == st.cmdline_addr
    assert mem[cmd_ptr:cmd_ptr + len(cmdline) + 1] == cmdline.encode() + b"\0"
    assert u64(zp, 0x070) == lib.QV_ACPI_RSDP_ADDR

    # initrd: high, page aligned, below initrd_addr_max and the end of low RAM, after the kernel.
    image, size = u32(zp, 0x218), u32(zp, 0x21C)
    assert (image, size) == (st.initrd_start, st.initrd_size) == (image, len(initrd))
    assert image % 4096 == 0
    assert image >= st.kernel_end
    assert image + size <= min(u32(img, 0x22C) + 1, RAM)
    assert RAM - (image + size) < 4096  # as high as it goes
    assert mem[image:image + size] == initrd

    # e820 in the zero page is the layout's map.
    n = zp[0x1E8]
    table = [(u64(zp, 0x2D0 + 20 * i), u64(zp, 0x2D8 + 20 * i), u32(zp, 0x2E0 + 20 * i))
             for i in range(n)]
    assert table == [(e.addr, e.size, e.type) for e in boot.e820_map(layout)]
    assert table[0] == (0, 0x9FC00, 1)
    assert (0x100000, RAM - 0x100000, 1) in table


def test_gdt_and_page_tables(stock_kernel: Path, layout, mem: bytearray) -> None:
    st = boot.load_kernel(mem, layout, stock_kernel, None, "")
    gdt = mem[st.gdt_base:st.gdt_base + st.gdt_limit + 1]
    code64 = u64(gdt, 0x10)
    data = u64(gdt, 0x18)
    assert (code64 >> 53) & 1 == 1 and (code64 >> 54) & 1 == 0  # L=1, D=0
    assert (code64 >> 40) & 0x9A == 0x9A  # present, code, readable
    assert (data >> 40) & 0x92 == 0x92 and not (data >> 43) & 1  # present, data, writable

    def translate(va: int) -> int:
        pml4e = u64(mem, st.cr3 + 8 * ((va >> 39) & 511))
        assert pml4e & 1
        pdpte = u64(mem, (pml4e & ~0xFFF) + 8 * ((va >> 30) & 511))
        assert pdpte & 1
        pde = u64(mem, (pdpte & ~0xFFF & (1 << 52) - 1) + 8 * ((va >> 21) & 511))
        assert pde & 0x81 == 0x81  # present, 2 MiB page
        return (pde & ~0x1FFFFF & (1 << 52) - 1) | (va & 0x1FFFFF)

    for va in (0, ZP, st.rip, st.kernel_end - 1, 0xBFFFFFFF, 0xFEE00000, 0xFFFFFFFF):
        assert translate(va) == va


def test_cmdline_too_long_names_boot_cmdline(stock_kernel: Path, layout, mem: bytearray) -> None:
    with pytest.raises(QVError) as e:
        boot.load_kernel(mem, layout, stock_kernel, None, "x" * 5000)
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == "boot.cmdline"


def test_missing_kernel_is_noent(layout, mem: bytearray, tmp_path: Path) -> None:
    with pytest.raises(QVError) as e:
        boot.load_kernel(mem, layout, tmp_path / "nope", None, "")
    assert e.value.name == "QV_ERR_NOENT" and e.value.path == "boot.kernel"


def test_missing_initrd_is_noent(stock_kernel: Path, layout, mem: bytearray,
                                 tmp_path: Path) -> None:
    with pytest.raises(QVError) as e:
        boot.load_kernel(mem, layout, stock_kernel, tmp_path / "nope", "")
    assert e.value.name == "QV_ERR_NOENT" and e.value.path == "boot.initrd"


def test_initrd_too_large(stock_kernel: Path, layout, mem: bytearray, tmp_path: Path) -> None:
    big = tmp_path / "big.img"
    with open(big, "wb") as f:
        f.truncate(100 * MIB)  # the kernel alone needs ~68 MiB of the 128
    with pytest.raises(QVError) as e:
        boot.load_kernel(mem, layout, stock_kernel, big, "")
    assert e.value.name == "QV_ERR_NOMEM" and e.value.path == "boot.initrd"
    assert "raise memory.size" in e.value.message


def test_neither_bzimage_nor_elf(layout, mem: bytearray, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"#!/bin/sh\necho not a kernel\n" * 100)
    with pytest.raises(QVError) as e:
        boot.load_kernel(mem, layout, junk, None, "")
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == "boot.kernel"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(QVError) as e:
        boot.load_kernel(mem, layout, empty, None, "")
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == "boot.kernel"


def test_kernel_too_big_for_ram(stock_kernel: Path) -> None:
    small = boot.memory_layout(32 * MIB)
    with pytest.raises(QVError) as e:
        boot.load_kernel(bytearray(32 * MIB), small, stock_kernel, None, "")
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == "boot.kernel"
    assert "memory.size" in e.value.message


def _expect_inval(mem: bytearray, layout, image: bytes | bytearray, fragment: str) -> None:
    with pytest.raises(QVError) as e:
        boot.load_kernel_image(mem, layout, bytes(image))
    assert e.value.name == "QV_ERR_INVAL", e.value
    assert e.value.path == "boot.kernel"
    assert fragment in e.value.message, e.value.message


def test_truncated_stock_kernel(stock_kernel: Path, layout, mem: bytearray) -> None:
    img = stock_kernel.read_bytes()
    setup_size = (img[0x1F1] + 1) * 512
    _expect_inval(mem, layout, img[:0x100], "neither a bzImage")
    _expect_inval(mem, layout, img[:0x240], "truncated bzImage")
    _expect_inval(mem, layout, img[:setup_size], "setup_sects")
    _expect_inval(mem, layout, img[:setup_size + 4096], "syssize")
    _expect_inval(mem, layout, img[:-4096], "syssize")


def test_valid_synthetic_bzimage(bzimage_factory, layout, mem: bytearray) -> None:
    payload = os.urandom(10000)
    st = boot.load_kernel_image(mem, layout, bytes(bzimage_factory(payload)))
    assert st.rip == 0x1000200
    assert mem[0x1000000:0x1000000 + len(payload)] == payload


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"syssize": 0xFFFFFFFF}, "syssize"),
    ({"syssize": 0}, "syssize"),
    ({"version": 0x0204}, "too old"),
    ({"version": 0x020B}, "too old"),
    ({"xloadflags": 0}, "XLF_KERNEL_64"),
    ({"loadflags": 0}, "zImage"),
    ({"init_size": 100}, "init_size"),
    ({"init_size": 0xFFFFFFFF}, "above 4 GiB"),
    ({"pref_address": 0xFFFFFFFFFFFFF000}, "above 4 GiB"),
    ({"pref_address": 0xFFFF0000, "relocatable": 0}, "above 4 GiB"),
    ({"pref_address": 0x1000, "relocatable": 0}, "below 1 MiB"),
    ({"kernel_alignment": 3}, "kernel_alignment"),
    ({"kernel_alignment": 0}, "kernel_alignment"),
    ({"pref_address": 0x7000000, "init_size": 0x2000000}, "memory.size"),
])
def test_hostile_headers(bzimage_factory, layout, mem: bytearray, kwargs: dict[str, int],
                         fragment: str) -> None:
    _expect_inval(mem, layout, bzimage_factory(**kwargs), fragment)


def test_hostile_setup_sects(bzimage_factory, layout, mem: bytearray) -> None:
    img = bzimage_factory()
    img[0x1F1] = 200  # claims 100 KiB of setup code in a 10 KiB file
    _expect_inval(mem, layout, img, "setup_sects")
    img[0x1F1] = 255
    _expect_inval(mem, layout, img, "setup_sects")


def test_hostile_header_length(bzimage_factory, layout, mem: bytearray) -> None:
    img = bzimage_factory()
    img[0x201] = 0xFF  # header claims to run to 0x301, into boot_params' own fields
    _expect_inval(mem, layout, img, "header length")
    img[0x201] = 0x10
    _expect_inval(mem, layout, img, "header length")


def test_relocatable_low_pref_is_moved_up(bzimage_factory, layout, mem: bytearray) -> None:
    st = boot.load_kernel_image(mem, layout, bytes(bzimage_factory(pref_address=0x1000)))
    assert st.kernel_start == 0x200000  # 1 MiB rounded up to kernel_alignment


def test_memory_buffer_smaller_than_layout(bzimage_factory, layout) -> None:
    with pytest.raises(QVError) as e:
        boot.load_kernel_image(bytearray(64 * MIB), layout, bytes(bzimage_factory()))
    assert e.value.name == "QV_ERR_INVAL"


def test_large_guest_initrd_under_initrd_addr_max(stock_kernel: Path, tmp_path: Path) -> None:
    """6 GiB of RAM: 3 GiB below the PCI hole, 3 GiB above 4 GiB. The initrd still goes below
    the kernel's initrd_addr_max (2 GiB for Debian's kernel), as high as it may."""
    import mmap

    ram = 6 << 30
    layout = boot.memory_layout(ram)
    assert (layout.low_ram_end, layout.high_ram_size) == (3 << 30, 3 << 30)
    mem = mmap.mmap(-1, layout.low_ram_end)  # untouched pages cost nothing
    try:
        initrd = os.urandom(MIB)
        (tmp_path / "initrd").write_bytes(initrd)
        st = boot.load_kernel(mem, layout, stock_kernel, tmp_path / "initrd", "quiet")
        addr_max = u32(stock_kernel.read_bytes()[:0x300], 0x22C)
        assert st.initrd_start + st.initrd_size <= addr_max + 1
        assert addr_max + 1 - (st.initrd_start + st.initrd_size) < 4096
        assert mem[st.initrd_start:st.initrd_start + MIB] == initrd
        zp = mem[ZP:ZP + 4096]
        table = [(u64(zp, 0x2D0 + 20 * i), u64(zp, 0x2D8 + 20 * i), u32(zp, 0x2E0 + 20 * i))
                 for i in range(zp[0x1E8])]
        assert table == [
            (0, 0x9FC00, 1),
            (0x9FC00, 0x100000 - 0x9FC00, 2),
            (0x100000, (3 << 30) - 0x100000, 1),
            (0xE0000000, 1 << 20, 2),  # ECAM for bus 0
            (1 << 32, 3 << 30, 1),
        ]
    finally:
        mem.close()


def test_directory_and_unreadable_paths(layout, mem: bytearray, tmp_path: Path) -> None:
    with pytest.raises(QVError) as e:
        boot.load_kernel(mem, layout, tmp_path, None, "")
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == "boot.kernel"
    assert "not a regular file" in e.value.message
    with pytest.raises(QVError) as e:
        boot.load_kernel(mem, layout, tmp_path / "missing-dir" / "vmlinuz", None, "")
    assert e.value.name == "QV_ERR_NOENT" and e.value.path == "boot.kernel"
