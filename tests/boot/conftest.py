"""Fixtures for the loader tests: Debian's stock cloud kernel (downloaded once with apt-get
into a cache, never installed), a PVH ELF kernel assembled here, synthetic bzImages, and the
real Linux boots through `launch` (one per kernel and session; they take minutes)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from quantavirt.host import probe

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

# --- Real Linux boots through `launch` (tests/boot/test_linux_boot.py) ---------------------
BOOT_TIMER = 0xFEB00000  # QV_BOOT_TIMER_MMIO (csrc/include/quantavirt/engine.h)
GUEST_MEMORY = "256M"
STOCK_MEMORY = "1G"



@dataclass(frozen=True)
class Boot:
    console: str
    returncode: int
    stderr: str
    seconds: float
    memory: str
    emulating: bool

    def line_time(self, text: str) -> float | None:
        """The kernel timestamp (seconds) of the first console line containing `text`."""
        for line in self.console.splitlines():
            if text in line and line.startswith("["):
                try:
                    return float(line[1:line.index("]")])
                except ValueError:
                    return None
        return None


def emulating_backend() -> bool:
    return probe().kvm_backend == "emulating"


def launch_kernel(tmp: Path, kernel: Path, initrd: Path, *, memory: str, cpus: int,
                  cmdline: str, timeout: float) -> Boot:
    """`python -m quantavirt launch` a config file for `kernel`; console and exit status."""
    disk = tmp / "disk.raw"
    disk.write_bytes(b"\0" * 65536)
    config = {"name": "linux-boot", "cpu": {"count": cpus}, "memory": {"size": memory},
              "storage": [{"path": str(disk)}],
              "boot": {"kernel": str(kernel), "initrd": str(initrd), "cmdline": cmdline}}
    cfg = tmp / "vm.json"
    cfg.write_text(json.dumps(config))
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "quantavirt", "launch", str(cfg), "--timeout",
                        str(timeout), "--log", str(tmp / "vm.log")],
                       capture_output=True, timeout=timeout + 120, check=False,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.monotonic() - start
    console = r.stdout.decode(errors="replace")
    (tmp / "console.txt").write_text(console)
    print(f"\n{kernel.name}: launch ended with {r.returncode} after {seconds:.1f} s wall "
          f"(console: {tmp / 'console.txt'}, log: {tmp / 'vm.log'})")
    return Boot(console, r.returncode, r.stderr.decode(errors="replace"), seconds, memory,
                emulating_backend())


@dataclass(frozen=True)
class Launcher:
    emulating: bool
    launch: object  # launch_kernel


@pytest.fixture(scope="session")
def linux_launcher() -> Launcher:
    """launch_kernel for tests that boot a kernel themselves, and the backend kind."""
    return Launcher(emulating_backend(), launch_kernel)


@pytest.fixture(scope="session")
def guest_vmlinux(guest_kernel_dir: Path) -> Path:
    """The project's guest kernel as an ELF vmlinux: loaded through PVH, no decompressor."""
    return guest_kernel_dir / "vmlinux"


@pytest.fixture(scope="session")
def guest_kernel_boot(tmp_path_factory: pytest.TempPathFactory, guest_vmlinux: Path,
                      initramfs: Path) -> Boot:
    """The project's kernel with 2 vCPUs; init asked to panic (panic=-1: the kernel resets).
    Here init cannot run (SYSCALL from ring 3 is not delivered on the emulating backend), and
    the kernel panics because init died: the same ending, reached one step earlier."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("no /dev/kvm")
    tmp = tmp_path_factory.mktemp("guest-kernel-boot")
    return launch_kernel(tmp, guest_vmlinux, initramfs, memory=GUEST_MEMORY, cpus=2,
                         cmdline=f"console=ttyS0 panic=-1 qv.action=panic "
                                 f"qv.boot_timer={BOOT_TIMER:#x}", timeout=1200)


# Wall-clock bound of the stock kernel's boot, so CI stays inside its budget: about 12 minutes
# to init on an idle machine with this emulating backend; more than 25 on a loaded one.
STOCK_BOOT_TIMEOUT = 1500


@pytest.fixture(scope="session")
def stock_kernel_boot(tmp_path_factory: pytest.TempPathFactory, stock_vmlinux: Path,
                      initramfs: Path) -> Boot:
    """Debian's stock kernel (its vmlinux, unmodified, through PVH) with 2 vCPUs and 1 GiB,
    init asked to power off. One boot per session: about 12+ minutes on kvm_pvm."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("no /dev/kvm")
    tmp = tmp_path_factory.mktemp("stock-kernel-boot")
    return launch_kernel(tmp, stock_vmlinux, initramfs, memory=STOCK_MEMORY, cpus=2,
                         cmdline=f"console=ttyS0 panic=-1 qv.action=poweroff "
                                 f"qv.boot_timer={BOOT_TIMER:#x}", timeout=STOCK_BOOT_TIMEOUT)
