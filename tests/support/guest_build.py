"""Builds the freestanding test guests with the system toolchain (gcc as compiler and
assembler driver, ld, objcopy) into flat binaries, cached by the hash of their sources.

An assembly guest names its entry mode and load address on a line
``# qv-guest: mode=long load=0x100000`` and may `.include "qv_guest.inc"` (the macros in
guest_include/). Used by the engine, lifecycle and PCI test fixtures."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

INCLUDE_DIR = Path(__file__).parent / "guest_include"
_HEADER = re.compile(r"#\s*qv-guest:\s*mode=(\w+)\s+load=(0x[0-9a-fA-F]+)")
_LD = ["ld", "-m", "elf_x86_64", "-N", "--no-warn-rwx-segments", "-z", "noexecstack"]


@dataclass(frozen=True)
class Guest:
    name: str
    mode: str
    load: int
    path: Path

    @property
    def binary(self) -> bytes:
        return self.path.read_bytes()


def toolchain_available() -> bool:
    return all(shutil.which(t) for t in ("gcc", "ld", "objcopy"))


def _source_key(paths: Sequence[Path], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in [*paths, *sorted(INCLUDE_DIR.iterdir())]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _objcopy(elf: Path, out: Path, sections: Sequence[str]) -> None:
    tmp = out.with_suffix(".tmp")
    args = [a for s in sections for a in ("-j", s)]
    subprocess.run(["objcopy", "-O", "binary", *args, str(elf), str(tmp)], check=True)
    tmp.replace(out)


def build_asm_guest(src: Path, cache_dir: Path) -> Guest:
    """One .S file -> a flat binary of its .text and .data, linked at its load address
    (real-mode code at 0: its offsets are relative to CS)."""
    m = _HEADER.search(src.read_text())
    if not m:
        raise ValueError(f"{src}: no '# qv-guest: mode=... load=...' line")
    mode, load = m.group(1), int(m.group(2), 16)
    out = cache_dir / f"{src.stem}-{_source_key([src])}.bin"
    if not out.exists():
        obj, elf = out.with_suffix(".o"), out.with_suffix(".elf")
        link = 0 if mode == "real" else load
        subprocess.run(["gcc", "-c", "-nostdlib", "-I", str(INCLUDE_DIR), "-o", str(obj),
                        str(src)], check=True)
        subprocess.run([*_LD, "-e", "_start", "-Ttext", hex(link), "-o", str(elf), str(obj)],
                       check=True)
        _objcopy(elf, out, [".text", ".data"])
    return Guest(src.stem, mode, load, out)


def build_c_guest(name: str, sources: Sequence[Path], linker_script: Path,
                  cflags: Sequence[str], load: int, cache_dir: Path) -> Guest:
    """C and assembly sources linked by `linker_script` -> a flat long-mode binary."""
    out = cache_dir / f"{name}-{_source_key([*sources, linker_script], ' '.join(cflags))}.bin"
    if not out.exists():
        objs = []
        for src in sources:
            obj = out.with_name(f"{out.stem}.{src.name}.o")
            flags = list(cflags) if src.suffix == ".c" else []
            subprocess.run(["gcc", "-c", *flags, "-I", str(INCLUDE_DIR), "-o", str(obj),
                            str(src)], check=True)
            objs.append(str(obj))
        elf = out.with_suffix(".elf")
        subprocess.run([*_LD, "-T", str(linker_script), "-o", str(elf), *objs], check=True)
        _objcopy(elf, out, [])
    return Guest(name, "long", load, out)


VIRTIO_GUEST_DIR = Path(__file__).resolve().parents[1] / "pci" / "guest"
VIRTIO_GUEST_LOAD = 0x100000
VIRTIO_GUEST_CFLAGS = ("-O2", "-ffreestanding", "-fno-pic", "-fno-pie", "-mno-red-zone",
                       "-mgeneral-regs-only", "-fno-stack-protector", "-fcf-protection=none",
                       "-fno-asynchronous-unwind-tables", "-Wall", "-Wextra", "-Werror")


def build_virtio_blk_guest(cache_dir: Path) -> bytes:
    """The freestanding virtio-blk test guest (tests/pci/guest: a minimal virtio-pci driver),
    entered in long mode at VIRTIO_GUEST_LOAD."""
    sources = [VIRTIO_GUEST_DIR / "start.S", VIRTIO_GUEST_DIR / "virtio_blk_guest.c"]
    return build_c_guest("virtio-guest", sources, VIRTIO_GUEST_DIR / "guest.ld",
                         VIRTIO_GUEST_CFLAGS, VIRTIO_GUEST_LOAD, cache_dir).binary
