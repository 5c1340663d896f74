"""Fixtures for the engine tests: skip without /dev/kvm, and the freestanding test guests
(tests/engine/guests/*.S) built into flat binaries with the system toolchain (gcc as the
assembler driver, ld, objcopy) into a cache directory. Each source names its entry mode and
load address on a line ``# qv-guest: mode=long load=0x100000``."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

# vm_helpers.py is importable by the tests here (pytest's importlib mode does not add the folder).
sys.path.insert(0, str(Path(__file__).resolve().parent))

GUEST_DIR = Path(__file__).parent / "guests"
_HEADER = re.compile(r"#\s*qv-guest:\s*mode=(\w+)\s+load=(0x[0-9a-fA-F]+)")


@dataclass(frozen=True)
class Guest:
    name: str
    mode: str
    load: int
    binary: bytes


def toolchain_available() -> bool:
    return all(shutil.which(t) for t in ("gcc", "ld", "objcopy"))


def build_guest(name: str, cache_dir: Path) -> Guest:
    src = GUEST_DIR / f"{name}.S"
    text = src.read_text()
    m = _HEADER.search(text)
    if not m:
        raise ValueError(f"{src}: no '# qv-guest: mode=... load=...' line")
    mode, load = m.group(1), int(m.group(2), 16)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = cache_dir / f"{name}-{key}.bin"
    if not out.exists():
        obj, elf = out.with_suffix(".o"), out.with_suffix(".elf")
        # Real-mode code is linked at 0: its offsets are relative to CS.
        link = 0 if mode == "real" else load
        subprocess.run(["gcc", "-c", "-nostdlib", "-o", str(obj), str(src)], check=True)
        subprocess.run(["ld", "-m", "elf_x86_64", "-N", "--no-warn-rwx-segments", "-e", "_start",
                        "-Ttext", hex(link), "-o", str(elf), str(obj)], check=True)
        tmp = out.with_suffix(".tmp")
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", "-j", ".data", str(elf),
                        str(tmp)], check=True)
        tmp.replace(out)
    return Guest(name, mode, load, out.read_bytes())


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if kvm_usable():
        return
    skip = pytest.mark.skip(reason="/dev/kvm is absent or not accessible")
    for item in items:
        if "kvm" in item.keywords and str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Guest]:
    """guest(name) -> the built Guest (binary cached per session and source hash)."""
    if not toolchain_available():
        pytest.skip("gcc/ld/objcopy not available to build the test guests")
    cache = tmp_path_factory.mktemp("guests")
    built: dict[str, Guest] = {}

    def get(name: str) -> Guest:
        if name not in built:
            built[name] = build_guest(name, cache)
        return built[name]

    return get
