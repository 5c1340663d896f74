"""memory.max_size: room for hot-add above RAM. The guest-physical range is reserved (not RAM,
no device: an access there is unclaimed MMIO), the host side is address space only (RSS does
not grow with max_size), and both go away with the VM."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from vm_helpers import GuestFactory

from quantavirt.engine import Machine, load_flat
from quantavirt.errors import QVError
from quantavirt.vm import VM

pytestmark = pytest.mark.kvm

GIB, MIB = 1 << 30, 1 << 20


def _status_kib(key: str) -> int:
    m = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert m
    return int(m.group(1))


def _mapping_of(size: int) -> list[str]:
    """Lines of /proc/self/maps for inaccessible private mappings of exactly `size` bytes."""
    out = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in span.split("-"))
        if hi - lo == size and perms == "---p":
            out.append(line)
    return out


@pytest.mark.parametrize("max_size", [64 * GIB, 4 << 40])
def test_reservation_costs_address_space_not_memory(max_size: int) -> None:
    ram = 128 * MIB
    rss0, vm0 = _status_kib("VmRSS"), _status_kib("VmSize")
    with Machine(memory=ram, cpus=1, max_memory=max_size) as m:
        base, size = m.hotplug_range()
        assert (base, size) == (4 * GIB, max_size - ram)
        assert len(_mapping_of(size)) == 1
        grown_vm = (_status_kib("VmSize") - vm0) * 1024
        grown_rss = (_status_kib("VmRSS") - rss0) * 1024
        assert grown_vm >= size  # the whole range is reserved ...
        assert grown_rss < 16 * MIB  # ... and costs nothing (guest RAM is untouched too)
    assert _mapping_of(size) == []


def test_rss_is_the_same_with_and_without_max_size() -> None:
    def rss_growth(max_memory: int | None) -> int:
        before = _status_kib("VmRSS")
        with Machine(memory=256 * MIB, cpus=1, max_memory=max_memory):
            return _status_kib("VmRSS") - before

    rss_growth(None)  # warm up (first VM maps the vCPU run pages, loads code)
    plain, reserved = rss_growth(None), rss_growth(1 << 40)
    assert abs(reserved - plain) < 2048, (plain, reserved)  # KiB


def test_no_max_size_no_reservation() -> None:
    with Machine(memory=128 * MIB, cpus=1) as m:
        assert m.hotplug_range() == (0, 0)
    with Machine(memory=128 * MIB, cpus=1, max_memory=128 * MIB) as m:
        assert m.hotplug_range() == (0, 0)


def test_the_guest_finds_no_ram_and_no_device_in_the_range(guest: GuestFactory) -> None:
    g = guest("hotplug_hole")
    with Machine(memory=128 * MIB, cpus=1, max_memory=8 * GIB, test_device=True) as m:
        assert m.hotplug_range()[0] == 4 * GIB
        load_flat(m, g.binary, g.mode, g.load)
        m.start()
        ex = m.wait(30)
        assert ex is not None and ex.reason == "debug-exit" and ex.status == 0, ex
        st = m.stats()
    assert st.results == [0xFFFFFFFF, 0xFFFFFFFF, 0x12345678]
    assert st.unhandled_mmio == 3  # read, write, read: nobody claims the range


def test_max_size_from_the_config() -> None:
    config = {"name": "maxsize", "cpu": {"count": 1},
              "memory": {"size": "256M", "max_size": "8G"}}
    with VM(config, flat_binary=b"\xf4") as vm:
        assert vm.machine.hotplug_range() == (4 * GIB, 8 * GIB - 256 * MIB)


@pytest.mark.parametrize("memory, path", [
    ({"size": "256M", "max_size": "128M"}, "memory.max_size"),
    ({"size": "256M", "max_size": "lots"}, "memory.max_size"),
])
def test_bad_max_size_in_an_unvalidated_config(memory: dict[str, str], path: str) -> None:
    with pytest.raises(QVError) as e:
        VM({"name": "bad", "cpu": {"count": 1}, "memory": memory}, flat_binary=b"\xf4")
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == path
