"""Fixtures for the PCI/virtio device tests: the freestanding virtio test guest (C + a small
assembly entry, tests/pci/guest/) built with the system compiler into a flat binary loaded at
1 MiB and entered in long mode, and a runner that attaches virtio devices to a Machine."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from guest_build import VIRTIO_GUEST_LOAD, build_virtio_blk_guest, toolchain_available

from quantavirt.engine import ExitInfo, Machine, Stats, load_flat

GUEST_LOAD = VIRTIO_GUEST_LOAD


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
def virtio_guest(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if not toolchain_available():
        pytest.skip("gcc/ld/objcopy not available to build the test guest")
    return build_virtio_blk_guest(tmp_path_factory.mktemp("virtio-guest"))


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
