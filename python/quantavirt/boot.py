"""Direct kernel boot from Python: memory layout, e820 map, kernel loading and ACPI tables.

Thin, typed wrappers over the C loaders (csrc/boot/); the engine calls the same C functions
from its own VM setup. Guest memory is any writable buffer (bytearray, mmap) whose byte 0 is
guest physical address 0. Failures raise :class:`QVError` with the config path the C side
named (``boot.kernel``, ``boot.initrd``, ``boot.cmdline``, ``memory.size``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike, fspath
from typing import Any

from quantavirt._ffi import ffi, lib
from quantavirt.errors import QVError

_ERRLEN = 512

__all__ = [
    "BootState",
    "E820Entry",
    "MemoryLayout",
    "build_acpi",
    "e820_map",
    "load_kernel",
    "load_kernel_image",
    "memory_layout",
]

MemoryLayout = Any  # a cffi "struct qv_memory_layout *"


def raise_for(code: int, errbuf: Any) -> None:
    """Turn a negative C return code and its "path: message" text into a QVError."""
    if code >= 0:
        return
    text = ffi.string(errbuf).decode(errors="replace")
    path: str | None = None
    head, sep, rest = text.partition(": ")
    if sep and head and " " not in head:
        path, text = head, rest
    raise QVError(code, text or None, path=path)


@dataclass(frozen=True)
class E820Entry:
    addr: int
    size: int
    type: int  # 1 RAM, 2 reserved, 3 ACPI, 4 NVS


@dataclass(frozen=True)
class BootState:
    """The boot vCPU's initial state (struct qv_boot_cpu_state) and where things went."""

    mode: int
    rip: int
    rsp: int
    rsi: int
    rbx: int
    rflags: int
    cr0: int
    cr3: int
    cr4: int
    efer: int
    gdt_base: int
    gdt_limit: int
    code_selector: int
    data_selector: int
    tss_selector: int
    kernel_start: int
    kernel_end: int
    initrd_start: int
    initrd_size: int
    cmdline_addr: int
    kernel_format: int

    @classmethod
    def from_c(cls, st: Any) -> BootState:
        return cls(**{f: int(getattr(st, f)) for f in cls.__dataclass_fields__})


def memory_layout(ram_size: int, ecam_bus_end: int = 0) -> MemoryLayout:
    """The default layout for `ram_size` bytes with an ECAM window for buses 0..ecam_bus_end."""
    layout = ffi.new("struct qv_memory_layout *")
    err = ffi.new("char[]", _ERRLEN)
    raise_for(lib.qv_layout_init(layout, ram_size, ecam_bus_end, err, _ERRLEN), err)
    return layout


def e820_map(layout: MemoryLayout) -> list[E820Entry]:
    entries = ffi.new("struct qv_e820_entry[]", lib.QV_E820_MAX_ENTRIES)
    n = lib.qv_e820_build(layout, entries, lib.QV_E820_MAX_ENTRIES)
    if n < 0:
        raise QVError(n, "memory layout has no valid e820 map")
    return [E820Entry(entries[i].addr, entries[i].size, entries[i].type) for i in range(n)]


def _guest(mem: Any) -> Any:
    return ffi.from_buffer("uint8_t[]", mem, require_writable=True)


def load_kernel(mem: Any, layout: MemoryLayout, kernel: str | PathLike[str],
                initrd: str | PathLike[str] | None = None, cmdline: str = "") -> BootState:
    """Load a bzImage or PVH vmlinux (and initrd) into guest memory; returns the boot state."""
    st = ffi.new("struct qv_boot_cpu_state *")
    err = ffi.new("char[]", _ERRLEN)
    initrd_c = fspath(initrd).encode() if initrd is not None else ffi.NULL
    rc = lib.qv_boot_load_kernel(_guest(mem), len(mem), fspath(kernel).encode(), initrd_c,
                                 cmdline.encode(), layout, st, err, _ERRLEN)
    raise_for(rc, err)
    return BootState.from_c(st)


def load_kernel_image(mem: Any, layout: MemoryLayout, kernel: bytes,
                      initrd: bytes | None = None, cmdline: str = "") -> BootState:
    """The same from images in memory."""
    st = ffi.new("struct qv_boot_cpu_state *")
    err = ffi.new("char[]", _ERRLEN)
    initrd_buf = ffi.from_buffer("uint8_t[]", initrd) if initrd else ffi.NULL
    rc = lib.qv_boot_load_kernel_image(_guest(mem), len(mem),
                                       ffi.from_buffer("uint8_t[]", kernel), len(kernel),
                                       initrd_buf, len(initrd) if initrd else 0,
                                       cmdline.encode(), layout, st, err, _ERRLEN)
    raise_for(rc, err)
    return BootState.from_c(st)


def build_acpi(mem: Any, layout: MemoryLayout, cpu_count: int,
               apic_ids: list[int] | None = None, *, com1: bool = True,
               pci_host_bridge: bool = True, ecam: bool = True) -> int:
    """Write the ACPI tables at QV_ACPI_BASE; returns the number of bytes they take."""
    if not 1 <= cpu_count <= lib.QV_ACPI_MAX_CPUS:
        raise QVError("QV_ERR_INVAL", f"{cpu_count} is outside 1..{lib.QV_ACPI_MAX_CPUS}",
                      path="cpu.count")
    cfg = ffi.new("struct qv_acpi_config *")
    lib.qv_acpi_config_init(cfg, cpu_count)
    if apic_ids is not None:
        if len(apic_ids) != cpu_count:
            raise QVError("QV_ERR_INVAL", "one APIC id per vCPU needed", path="cpu.count")
        for i, apic_id in enumerate(apic_ids):
            cfg.apic_ids[i] = apic_id
    cfg.com1 = int(com1)
    cfg.pci_host_bridge = int(pci_host_bridge)
    cfg.ecam = int(ecam)
    err = ffi.new("char[]", _ERRLEN)
    rc = lib.qv_acpi_build(_guest(mem), len(mem), layout, cfg, err, _ERRLEN)
    raise_for(rc, err)
    return int(rc)


_COMPRESSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b", "gzip"),
    (b"\x02\x21\x4c\x18", "lz4"),  # LZ4 legacy frame, what the kernel's lz4 build emits
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
)


def bzimage_payload(image: bytes) -> bytes:
    """The uncompressed vmlinux (an ELF) inside a bzImage, via the header's payload_offset and
    payload_length (boot protocol 2.08+). Booting it through PVH skips the decompressor.
    xz, gzip and bzip2 use the standard library; lz4 and zstd need their command-line tools."""
    import bz2
    import gzip
    import lzma
    import shutil
    import struct
    import subprocess

    def bad(msg: str) -> QVError:
        return QVError("QV_ERR_INVAL", msg, path="boot.kernel")

    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        raise bad("not a bzImage")
    if struct.unpack_from("<H", image, 0x206)[0] < 0x0208:
        raise bad("boot protocol older than 2.08 has no payload fields")
    setup = ((image[0x1F1] or 4) + 1) * 512
    off, length = struct.unpack_from("<II", image, 0x248)
    if setup + off + length > len(image) or length == 0:
        raise bad("payload_offset/payload_length point outside the file")
    payload = image[setup + off:setup + off + length]
    kind = next((k for magic, k in _COMPRESSED_MAGIC if payload.startswith(magic)), None)
    try:
        if kind == "xz":
            out = lzma.LZMADecompressor().decompress(payload)
        elif kind == "gzip":
            out = gzip.decompress(payload)
        elif kind == "bzip2":
            out = bz2.BZ2Decompressor().decompress(payload)
        elif kind in ("lz4", "zstd"):
            tool = shutil.which(kind)
            if not tool:
                raise QVError("QV_ERR_NODEV", f"the {kind} tool is needed to unpack this kernel",
                              path="boot.kernel")
            # The kernel appends the uncompressed size after the stream; the tools ignore it.
            run = subprocess.run([tool, "-d", "-c"], input=payload, capture_output=True,
                                 check=False)
            out = run.stdout
        else:
            raise bad("unknown payload compression")
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise bad(f"corrupt {kind} payload: {e}") from e
    if not out.startswith(b"\x7fELF"):
        raise bad("the decompressed payload is not an ELF file")
    return out
