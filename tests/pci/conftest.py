"""Fixtures for the PCI/virtio device tests: the freestanding virtio test guest (C + a small
assembly entry, tests/pci/guest/) built with the system compiler into a flat binary loaded at
1 MiB and entered in long mode, and a runner that attaches virtio devices to a Machine."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from quantavirt.engine import ExitInfo, Machine, Stats, load_flat

GUEST_SRC = Path(__file__).parent / "guest"
GUEST_LOAD = 0x100000
CFLAGS = ["-O2", "-ffreestanding", "-fno-pic", "-fno-pie", "-mno-red-zone",
          "-mgeneral-regs-only", "-fno-stack-protector", "-fcf-protection=none",
          "-fno-asynchronous-unwind-tables", "-Wall", "-Wextra", "-Werror"]


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if kvm_usable():
        return
    skip = pytest.mark.skip(reason="/dev/kvm is absent or not accessible")
    for item in items:
        if "kvm" in item.keywords and str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(skip)


def build_virtio_guest(cache: Path) -> bytes:
    sources = [GUEST_SRC / "start.S", GUEST_SRC / "virtio_blk_guest.c", GUEST_SRC / "guest.ld"]
    key = hashlib.sha256(b"".join(p.read_bytes() for p in sources) +
                         " ".join(CFLAGS).encode()).hexdigest()[:16]
    out = cache / f"virtio-guest-{key}.bin"
    if not out.exists():
        c_obj, s_obj, elf = (cache / f"{key}.c.o", cache / f"{key}.s.o", cache / f"{key}.elf")
        subprocess.run(["gcc", "-c", *CFLAGS, "-o", str(c_obj), str(sources[1])], check=True)
        subprocess.run(["gcc", "-c", "-o", str(s_obj), str(sources[0])], check=True)
        subprocess.run(["ld", "-m", "elf_x86_64", "-N", "--no-warn-rwx-segments",
                        "-z", "noexecstack", "-T", str(sources[2]), "-o", str(elf),
                        str(s_obj), str(c_obj)], check=True)
        tmp = out.with_suffix(".tmp")
        subprocess.run(["objcopy", "-O", "binary", str(elf), str(tmp)], check=True)
        tmp.replace(out)
    return out.read_bytes()


@pytest.fixture(scope="session")
def virtio_guest(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if not all(shutil.which(t) for t in ("gcc", "ld", "objcopy")):
        pytest.skip("gcc/ld/objcopy not available to build the test guest")
    return build_virtio_guest(tmp_path_factory.mktemp("virtio-guest"))


@dataclass
class GuestRun:
    exit: ExitInfo
    stats: Stats
    info: dict[str, int]
    blk: dict[str, int]


GuestRunner = Callable[..., GuestRun]


@pytest.fixture
def run_virtio_guest(virtio_guest: bytes) -> GuestRunner:
    """run(disk_handle, mode=0, serial=..., io=..., timeout=...) -> GuestRun."""

    def run(disk: object, mode: int = 0, *, serial: str = "qv-disk0", discard: bool = True,
            readonly: bool = False, io: str = "threads", timeout: float = 60.0) -> GuestRun:
        with Machine(memory=64 << 20) as m:
            idx = m.add_virtio_blk(disk, discard=discard, readonly=readonly, serial=serial,
                                   io=io)
            load_flat(m, virtio_guest, "long", GUEST_LOAD)
            m.write_phys(0x7000, mode.to_bytes(4, "little"))
            m.start()
            ex = m.wait(timeout)
            if ex is None:
                m.stop()
                m.wait()
                pytest.fail(f"the virtio guest ran longer than {timeout} s: "
                            f"results {m.stats().results}, device {m.virtio_info(idx)}")
            return GuestRun(ex, m.stats(), m.virtio_info(idx), m.blk_stats(idx))

    return run
