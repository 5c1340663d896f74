"""Fixtures for the loader tests: Debian's stock cloud kernel (downloaded once with apt-get
into a cache, never installed), a PVH ELF kernel assembled here, and synthetic bzImages."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

KERNEL_META_PACKAGE = "linux-image-cloud-amd64"


def cache_dir() -> Path:
    base = os.environ.get("QV_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "quantavirt")
    path = Path(base) / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _kernel_package() -> str:
    """The versioned image package the meta package points at."""
    for attempt in range(2):
        out = subprocess.run(["apt-cache", "depends", KERNEL_META_PACKAGE], capture_output=True,
                             text=True, check=False).stdout
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("Depends: linux-image-"):
                return line.split(":", 1)[1].strip()
        if attempt == 0:
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    raise RuntimeError(f"apt-cache cannot resolve {KERNEL_META_PACKAGE}")


@pytest.fixture(scope="session")
def stock_kernel() -> Path:
    """/boot/vmlinuz-* of Debian's stock cloud kernel, extracted from its .deb."""
    cache = cache_dir()
    found = sorted(cache.glob("vmlinuz-*-cloud-amd64"))
    if found:
        return found[-1]
    package = _kernel_package()
    # A private work dir and an atomic rename: other checkouts may fill the cache at once.
    work = Path(tempfile.mkdtemp(dir=cache, prefix="download-"))
    try:
        subprocess.run(["apt-get", "download", "-qq", package], cwd=work, check=True,
                       capture_output=True)
        deb = next(work.glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
        vmlinuz = next((work / "root" / "boot").glob("vmlinuz-*"))
        target = cache / vmlinuz.name
        os.replace(vmlinuz, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def stock_vmlinux(stock_kernel: Path) -> Path:
    """The uncompressed ELF vmlinux inside the stock bzImage (it carries a PVH note)."""
    from quantavirt.boot import bzimage_payload

    target = stock_kernel.with_name(stock_kernel.name.replace("vmlinuz", "vmlinux"))
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="vmlinux-")
        with os.fdopen(fd, "wb") as f:
            f.write(bzimage_payload(stock_kernel.read_bytes()))
        os.replace(tmp, target)
    return target


PVH_ASM = r"""
    .code32
    .section .text, "ax"
    .globl pvh_start
pvh_start:
    movl %ebx, %esi          /* hvm_start_info */
    movw $0x3f8, %dx
    movb $'P', %al
    outb %al, %dx
1:  hlt
    jmp 1b

    .section .data, "aw"
    .globl payload
payload:
    .ascii "QuantaVirt PVH test payload"

    .section .bss, "aw", @nobits
    .space 0x3000

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                  /* namesz */
    .long 4                  /* descsz */
    .long 18                 /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start
    .balign 4
"""

PVH_LDS = """
ENTRY(pvh_start)
PHDRS { text PT_LOAD; data PT_LOAD; note PT_NOTE; }
SECTIONS {
    . = 0x1000000;
    .text : { *(.text) } :text
    .note : { *(.note.Xen) } :text :note
    . = ALIGN(0x1000);
    .data : { *(.data) } :data
    .bss : { *(.bss) } :data
    /DISCARD/ : { *(.comment) *(.note.gnu*) }
}
"""


@pytest.fixture(scope="session")
def pvh_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny x86-64 ELF with a PVH entry note, built with the system toolchain."""
    d = tmp_path_factory.mktemp("pvh")
    (d / "pvh.S").write_text(PVH_ASM)
    (d / "pvh.lds").write_text(PVH_LDS)
    subprocess.run(["gcc", "-c", "-o", str(d / "pvh.o"), str(d / "pvh.S")], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-nostdlib", "-static", "-T", str(d / "pvh.lds"),
                    "-o", str(d / "pvh.elf"), str(d / "pvh.o")], check=True)
    return d / "pvh.elf"


def make_bzimage(payload: bytes = b"\x90" * 8192, *, setup_sects: int = 4,
                 version: int = 0x020F, xloadflags: int = 0x7F, relocatable: int = 1,
                 kernel_alignment: int = 0x200000, pref_address: int = 0x1000000,
                 init_size: int | None = None, syssize: int | None = None,
                 cmdline_size: int = 2047, initrd_addr_max: int = 0x7FFFFFFF,
                 loadflags: int = 0x01) -> bytearray:
    """A synthetic bzImage: a setup header like a real kernel's and `payload` after it."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    struct.pack_into("<I", setup, 0x1F4, syssize if syssize is not None
                     else (len(payload) + 15) // 16)
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x200] = 0xEB
    setup[0x201] = 0x6A  # header ends at 0x26c, as in Linux 6.1
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    setup[0x211] = loadflags
    struct.pack_into("<I", setup, 0x214, 0x100000)
    struct.pack_into("<I", setup, 0x22C, initrd_addr_max)
    struct.pack_into("<I", setup, 0x230, kernel_alignment)
    setup[0x234] = relocatable
    struct.pack_into("<H", setup, 0x236, xloadflags)
    struct.pack_into("<I", setup, 0x238, cmdline_size)
    struct.pack_into("<Q", setup, 0x258, pref_address)
    struct.pack_into("<I", setup, 0x260, init_size if init_size is not None
                     else max(len(payload), 0x100000))
    return setup + payload


@pytest.fixture
def bzimage_factory():  # noqa: ANN201 - returns make_bzimage
    return make_bzimage
