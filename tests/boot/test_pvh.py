"""The PVH loader on an ELF kernel assembled here, and on hostile variants of it."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from quantavirt import boot
from quantavirt._ffi import lib
from quantavirt.errors import QVError

MIB = 1 << 20
RAM = 64 * MIB
SI = lib.QV_BOOT_START_INFO_ADDR


@dataclass
class Phdr:
    at: int  # offset of the header in the file
    type: int
    offset: int
    paddr: int
    filesz: int
    memsz: int


def phdrs(img: bytes | bytearray) -> list[Phdr]:
    phoff = struct.unpack_from("<Q", img, 32)[0]
    phnum = struct.unpack_from("<H", img, 56)[0]
    out = []
    for i in range(phnum):
        at = phoff + 56 * i
        ptype, _flags, offset, _vaddr, paddr, filesz, memsz = struct.unpack_from(
            "<IIQQQQQ", img, at)
        out.append(Phdr(at, ptype, offset, paddr, filesz, memsz))
    return out


def set_phdr(img: bytearray, ph: Phdr, **fields: int) -> None:
    pos = {"offset": 8, "paddr": 24, "filesz": 32, "memsz": 40}
    for name, value in fields.items():
        struct.pack_into("<Q", img, ph.at + pos[name], value)


def note_segment(img: bytes | bytearray) -> Phdr:
    return next(p for p in phdrs(img) if p.type == 4)


def entry_symbol(img: bytes | bytearray) -> int:
    note = note_segment(img)
    namesz, descsz, ntype = struct.unpack_from("<III", img, note.offset)
    assert (namesz, descsz, ntype) == (4, 4, 18)
    return struct.unpack_from("<I", img, note.offset + 16)[0]


@pytest.fixture
def layout():  # noqa: ANN201
    return boot.memory_layout(RAM)


@pytest.fixture
def mem() -> bytearray:
    return bytearray(RAM)


def test_pvh_load(pvh_elf: Path, layout, mem: bytearray, tmp_path: Path) -> None:
    img = pvh_elf.read_bytes()
    initrd = os.urandom(MIB + 5)
    (tmp_path / "initrd").write_bytes(initrd)
    cmdline = "console=ttyS0 earlyprintk=serial"
    st = boot.load_kernel(mem, layout, pvh_elf, tmp_path / "initrd", cmdline)

    assert st.kernel_format == 2
    assert st.mode == lib.QV_BOOT_PROT32
    assert st.rip == entry_symbol(img)
    assert st.rbx == SI
    assert st.cr0 & 1 and not st.cr0 & 0x80000000  # protected mode, paging off
    assert st.code_selector == 0x08 and st.data_selector == 0x18 and st.tss_selector == 0x20
    gdt = mem[st.gdt_base:st.gdt_base + st.gdt_limit + 1]
    code32 = struct.unpack_from("<Q", gdt, 0x08)[0]
    assert (code32 >> 54) & 1 == 1 and (code32 >> 53) & 1 == 0  # D=1, L=0
    # Every PT_LOAD is at its physical address, .bss zeroed.
    loads = [p for p in phdrs(img) if p.type == 1]
    assert loads
    for p in loads:
        assert mem[p.paddr:p.paddr + p.filesz] == img[p.offset:p.offset + p.filesz]
        assert not any(mem[p.paddr + p.filesz:p.paddr + p.memsz])
    assert any(p.memsz > p.filesz for p in loads)  # the test ELF has a .bss
    assert b"QuantaVirt PVH test payload" in mem[0x1000000:0x1010000]

    # hvm_start_info
    magic, version, flags, nr_modules, modlist, cmd, rsdp, memmap, nmap = struct.unpack_from(
        "<IIIIQQQQI", mem, SI)
    assert magic == 0x336EC578 and version == 1 and flags == 0
    assert mem[cmd:cmd + len(cmdline) + 1] == cmdline.encode() + b"\0"
    assert rsdp == lib.QV_ACPI_RSDP_ADDR
    assert nr_modules == 1
    paddr, size, mod_cmd, _ = struct.unpack_from("<QQQQ", mem, modlist)
    assert (paddr, size) == (st.initrd_start, len(initrd))
    assert paddr % 4096 == 0 and paddr >= st.kernel_end and paddr + size <= RAM
    assert mem[paddr:paddr + size] == initrd
    entries = [struct.unpack_from("<QQII", mem, memmap + 24 * i)[:3] for i in range(nmap)]
    assert entries == [(e.addr, e.size, e.type) for e in boot.e820_map(layout)]


def test_pvh_without_initrd(pvh_elf: Path, layout, mem: bytearray) -> None:
    boot.load_kernel(mem, layout, pvh_elf)
    nr_modules, modlist = struct.unpack_from("<IQ", mem, SI + 12)
    assert nr_modules == 0 and modlist == 0


def _expect_inval(mem: bytearray, layout, image: bytes | bytearray, fragment: str) -> None:
    with pytest.raises(QVError) as e:
        boot.load_kernel_image(mem, layout, bytes(image))
    assert e.value.name == "QV_ERR_INVAL", e.value
    assert e.value.path == "boot.kernel"
    assert fragment in e.value.message, e.value.message


def test_truncated_elf(pvh_elf: Path, layout, mem: bytearray) -> None:
    img = pvh_elf.read_bytes()
    _expect_inval(mem, layout, img[:40], "truncated ELF")
    _expect_inval(mem, layout, img[:100], "program header table")
    last = max(p.offset + p.filesz for p in phdrs(img))
    _expect_inval(mem, layout, img[:last - 1], "outside the file")


def test_segment_outside_memory(pvh_elf: Path, layout, mem: bytearray) -> None:
    img = bytearray(pvh_elf.read_bytes())
    load = next(p for p in phdrs(img) if p.type == 1)
    for paddr in (RAM - 16, 0xFFFFFFFFFFFFF000, 0x100000000):
        bad = bytearray(img)
        set_phdr(bad, load, paddr=paddr)
        _expect_inval(mem, layout, bad, "outside guest RAM")
    bad = bytearray(img)
    set_phdr(bad, load, memsz=0xFFFFFFFFFFFFFFFF)
    _expect_inval(mem, layout, bad, "outside guest RAM")


def test_segment_over_boot_tables(pvh_elf: Path, layout, mem: bytearray) -> None:
    img = bytearray(pvh_elf.read_bytes())
    load = next(p for p in phdrs(img) if p.type == 1)
    for paddr in (0x7000, lib.QV_ACPI_BASE, 0):
        bad = bytearray(img)
        set_phdr(bad, load, paddr=paddr)
        _expect_inval(mem, layout, bad, "boot tables")


def test_overlapping_segments(pvh_elf: Path, layout, mem: bytearray) -> None:
    img = bytearray(pvh_elf.read_bytes())
    loads = [p for p in phdrs(img) if p.type == 1]
    assert len(loads) >= 2
    set_phdr(img, loads[1], paddr=loads[0].paddr + 8)
    _expect_inval(mem, layout, img, "overlap")


def test_filesz_beyond_memsz_and_file(pvh_elf: Path, layout, mem: bytearray) -> None:
    img = bytearray(pvh_elf.read_bytes())
    load = next(p for p in phdrs(img) if p.type == 1)
    bad = bytearray(img)
    set_phdr(bad, load, filesz=load.memsz + 1)
    _expect_inval(mem, layout, bad, "filesz > memsz")
    bad = bytearray(img)
    set_phdr(bad, load, offset=0xFFFFFFFFFFFFFF00)
    _expect_inval(mem, layout, bad, "outside the file")


def test_bogus_note_sizes(pvh_elf: Path, layout, mem: bytearray) -> None:
    img = bytearray(pvh_elf.read_bytes())
    note = note_segment(img)
    for namesz, descsz, fragment in ((4, 0xFFFFFFF0, "descriptor size"),
                                     (0xFFFFFFFF, 4, "name size"),
                                     (4, 2, "expected 4 or 8"),
                                     (4, 16, "descriptor size")):
        bad = bytearray(img)
        struct.pack_into("<II", bad, note.offset, namesz, descsz)
        _expect_inval(mem, layout, bad, fragment)
    bad = bytearray(img)
    set_phdr(bad, note, filesz=0xFFFFFFFFFFFF)
    _expect_inval(mem, layout, bad, "PT_NOTE")


def test_no_pvh_note(pvh_elf: Path, layout, mem: bytearray) -> None:
    img = bytearray(pvh_elf.read_bytes())
    note = note_segment(img)
    struct.pack_into("<I", img, note.offset + 8, 17)  # some other Xen note
    _expect_inval(mem, layout, img, "no PVH entry note")


def test_entry_outside_segments(pvh_elf: Path, layout, mem: bytearray) -> None:
    img = bytearray(pvh_elf.read_bytes())
    note = note_segment(img)
    struct.pack_into("<I", img, note.offset + 16, 0x3000000)
    _expect_inval(mem, layout, img, "not inside a loaded segment")


def test_wrong_elf_kind(pvh_elf: Path, layout, mem: bytearray) -> None:
    img = bytearray(pvh_elf.read_bytes())
    bad = bytearray(img)
    bad[4] = 1  # ELFCLASS32
    _expect_inval(mem, layout, bad, "64-bit ELF")
    bad = bytearray(img)
    struct.pack_into("<H", bad, 18, 40)  # EM_ARM
    _expect_inval(mem, layout, bad, "x86-64")
    bad = bytearray(img)
    struct.pack_into("<H", bad, 56, 0xFFFF)  # phnum
    _expect_inval(mem, layout, bad, "program header")


def test_stock_vmlinux_through_pvh(stock_vmlinux: Path, tmp_path: Path) -> None:
    """Debian's own kernel, unpacked from its bzImage, boots through its PVH note."""
    img = stock_vmlinux.read_bytes()
    ram = 256 * MIB
    mem = bytearray(ram)
    layout = boot.memory_layout(ram)
    (tmp_path / "initrd").write_bytes(b"070701" + os.urandom(4096))
    st = boot.load_kernel(mem, layout, stock_vmlinux, tmp_path / "initrd", "console=ttyS0")
    # Find the PVH note ourselves among the kernel's many Xen notes.
    entry = None
    for p in phdrs(img):
        if p.type != 4:
            continue
        pos = p.offset
        while pos + 12 <= p.offset + p.filesz:
            namesz, descsz, ntype = struct.unpack_from("<III", img, pos)
            name = img[pos + 12:pos + 12 + namesz]
            desc_at = pos + 12 + (namesz + 3) // 4 * 4
            if name == b"Xen\0" and ntype == 18:
                entry = int.from_bytes(img[desc_at:desc_at + descsz], "little")
            pos = desc_at + (descsz + 3) // 4 * 4
    assert entry is not None
    assert st.rip == entry and st.mode == lib.QV_BOOT_PROT32
    loads = [p for p in phdrs(img) if p.type == 1]
    assert len(loads) >= 3
    for p in loads:
        assert mem[p.paddr:p.paddr + p.filesz] == img[p.offset:p.offset + p.filesz]
    assert st.kernel_end == max(p.paddr + p.memsz for p in loads)
    assert st.initrd_start >= st.kernel_end
    assert struct.unpack_from("<I", mem, SI)[0] == 0x336EC578


def test_bzimage_payload_rejects_lies(stock_kernel: Path) -> None:
    img = bytearray(stock_kernel.read_bytes()[:1 << 20])
    with pytest.raises(QVError) as e:
        boot.bzimage_payload(bytes(img))  # payload runs past the (cut) file
    assert e.value.path == "boot.kernel"
    with pytest.raises(QVError):
        boot.bzimage_payload(b"\x7fELF" + bytes(1000))
