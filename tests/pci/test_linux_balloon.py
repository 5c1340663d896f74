"""virtio-balloon with the project's guest kernel: inflate and deflate from the Python API,
and the guest's memory statistics.

User space cannot run on this machine (the kernel dies at init's first system call), so the
kernel is kept alive without it: no disk and `root=/dev/vda rootwait` make it wait for a root
device forever, in process context with interrupts and workqueues running, after every
driver has probed. The balloon driver inflates and deflates inside the kernel (a workqueue
reacting to the configuration-change interrupt), and answers statistics requests the same
way, so everything below happens in that window. One boot; its times are printed (-s).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from quantavirt.vm import VM

pytestmark = [pytest.mark.kvm, pytest.mark.slow]

MEMORY = 256 << 20
TARGET = 32 << 20  # 8192 pages: inflating takes the slow emulated guest a while
WAITING = b"Waiting for root device"
KIND_BALLOON = 4


def read_until(vm: VM, out: bytearray, needle: bytes, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if vm.wait(0.2) is not None:
            return needle in out
        while chunk := vm.console.read(0):
            out += chunk
        if needle in out:
            return True
    return False


def wait_actual(vm: VM, want: int, timeout: float) -> tuple[bool, float]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if vm.balloon_info()["actual_bytes"] == want:
            return True, time.monotonic() - t0
        time.sleep(0.5)
    return False, time.monotonic() - t0


def fresh_stats(vm: VM, timeout: float = 60.0) -> dict[str, int]:
    """Ask the driver for new statistics and wait until they arrive."""
    before = vm.balloon_info()["stats_updates"]
    vm.balloon_info(refresh=True)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        info = vm.balloon_info()
        if info["stats_updates"] > before:
            return dict(info["guest_stats"])
        time.sleep(0.2)
    pytest.fail("the balloon driver did not answer a statistics request")


def test_linux_balloon_inflate_deflate_and_stats(guest_kernel_dir: Path, tmp_path: Path,
                                                 record_property) -> None:
    config = {"name": "linux-balloon", "cpu": {"count": 1},
              "memory": {"size": "256M", "balloon": True},
              "console": {"type": "virtio-console", "log": str(tmp_path / "console.log")},
              "boot": {"kernel": str(guest_kernel_dir / "vmlinux"),
                       "cmdline": "console=ttyS0 root=/dev/vda rootwait panic=-1"}}
    out = bytearray()
    t0 = time.monotonic()
    with VM(config, log_path=str(tmp_path / "vm.log")) as vm:
        vm.start()
        assert read_until(vm, out, WAITING, 900), out.decode(errors="replace")[-3000:]
        boot_s = time.monotonic() - t0
        infos = [vm.machine.virtio_info(i) for i in range(3)]
        balloon = next(i for i in infos if i["kind"] == KIND_BALLOON)
        assert balloon["status"] & 0x04, f"balloon driver not bound: {balloon}"
        assert vm.balloon_info()["actual_bytes"] == 0

        # the driver primed the statistics queue at probe and answers refreshes
        stats0 = fresh_stats(vm)
        assert stats0.get("total_memory", 0) > MEMORY // 2, stats0
        assert 0 < stats0.get("free_memory", 0) <= stats0["total_memory"], stats0

        vm.balloon(TARGET)
        ok, inflate_s = wait_actual(vm, TARGET, 600)
        info = vm.balloon_info()
        assert ok, f"balloon did not inflate: {info}"
        assert info["inflated_pages"] >= TARGET // 4096 and info["bad_pfns"] == 0
        stats1 = fresh_stats(vm)
        # the pages the balloon holds are no longer free in the guest
        assert stats1["free_memory"] <= stats0["free_memory"] - TARGET * 3 // 4, \
            (stats0, stats1)

        vm.balloon(0)
        ok, deflate_s = wait_actual(vm, 0, 600)
        info = vm.balloon_info()
        assert ok, f"balloon did not deflate: {info}"
        assert info["deflated_pages"] == info["inflated_pages"]
        stats2 = fresh_stats(vm)
        assert stats2["free_memory"] >= stats1["free_memory"] + TARGET * 3 // 4, \
            (stats1, stats2)
        assert vm.state == "RUNNING"  # still waiting for its root device: alive throughout
        vm.stop()
    print(f"\nballoon boot: {boot_s:.1f} s to '{WAITING.decode()}', inflate {TARGET >> 20} MiB "
          f"{inflate_s:.1f} s, deflate {deflate_s:.1f} s; free memory "
          f"{stats0['free_memory'] >> 20} -> {stats1['free_memory'] >> 20} -> "
          f"{stats2['free_memory'] >> 20} MiB")
    record_property("boot_s", round(boot_s, 1))
    record_property("inflate_s", round(inflate_s, 1))
    record_property("deflate_s", round(deflate_s, 1))
