"""Refusals before any vCPU runs: no KVM device, memory the host cannot give, hugepage pools
that are too small, and teardown that leaves nothing behind."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from quantavirt.engine import KVM_DEVICE_ENV, Machine, load_flat, run_flat
from quantavirt.errors import QVError
from quantavirt.host import probe

pytestmark = pytest.mark.kvm


def test_missing_kvm_device_is_novmx(tmp_path: Path):
    missing = str(tmp_path / "no-kvm")
    with pytest.raises(QVError) as e:
        Machine(memory=16 << 20, kvm_path=missing)
    assert e.value.name == "QV_ERR_NOVMX" and e.value.code == -3
    assert missing in e.value.message and "modprobe" in e.value.message


def test_missing_kvm_device_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KVM_DEVICE_ENV, str(tmp_path / "absent"))
    with pytest.raises(QVError) as e:
        Machine(memory=16 << 20)
    assert e.value.code == -3
    info = probe()
    assert not info.kvm_available and "absent" in info.kvm_error


def test_kvm_device_without_permission_says_what_to_do(tmp_path: Path):
    dev = tmp_path / "kvm"
    dev.write_text("")
    dev.chmod(0)
    if os.access(dev, os.R_OK | os.W_OK):
        # root ignores file modes: a regular file then fails the API-version check instead.
        with pytest.raises(QVError) as e:
            Machine(memory=16 << 20, kvm_path=str(dev))
        assert e.value.code == -3
    else:
        with pytest.raises(QVError) as e:
            Machine(memory=16 << 20, kvm_path=str(dev))
        assert e.value.code == -3 and "group" in e.value.message


def test_too_much_memory_is_refused_before_vcpus_exist():
    before = threading.active_count()
    host = probe().host_memory
    with pytest.raises(QVError) as e:
        Machine(memory=host * 4 // (1 << 21) * (1 << 21) + (64 << 30), cpus=2)
    assert e.value.name == "QV_ERR_NOMEM"
    assert e.value.path == "memory.size" and "host" in e.value.message
    assert threading.active_count() == before


def test_hugepages_2m_with_short_pool_names_missing_pages():
    pool = probe().hugepages.get("2M")
    if pool is None:
        pytest.skip("no 2M hugepage pool on this host")
    want = pool.free + 3
    with pytest.raises(QVError) as e:
        Machine(memory=want * (2 << 20), hugepages="2M")
    assert e.value.name == "QV_ERR_NOMEM"
    assert f"need {want} pages" in e.value.message
    assert "3 pages missing" in e.value.message
    assert "nr_hugepages" in e.value.message


def test_memory_not_multiple_of_page_is_inval():
    with pytest.raises(QVError) as e:
        Machine(memory=(16 << 20) + 100)
    assert e.value.name == "QV_ERR_INVAL"


def test_too_many_vcpus_is_inval():
    with pytest.raises(QVError) as e:
        Machine(memory=16 << 20, cpus=100000)
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == "cpu.count"


def test_nonexistent_numa_node():
    with pytest.raises(QVError) as e:
        Machine(memory=16 << 20, numa_node=999)
    assert e.value.name == "QV_ERR_NODEV" and "999" in e.value.message


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_teardown_joins_threads_and_closes_fds(guest):
    g = guest("real_hello")
    run_flat(g.binary, g.load, g.mode)  # warm up lazy imports and the guest cache
    fds, threads = _fds(), threading.active_count()
    # OS threads (vCPU pthreads are not Python threads); other libraries loaded earlier in
    # the session may own some, so compare with this baseline rather than with Python's count.
    task_threads_before = len(os.listdir("/proc/self/task"))
    for _ in range(3):
        r = run_flat(g.binary, g.load, g.mode, cpus=2)
        assert r.exit.status == 42
    assert _fds() == fds
    assert threading.active_count() == threads
    # A guest that never ends is stopped; still nothing left behind.
    m = Machine(memory=16 << 20, cpus=2)
    m.write_phys(0x10000, b"\xeb\xfe")  # jmp $
    m.set_boot_state("real", 0x10000)
    m.start()
    assert m.wait(0.3) is None
    m.stop()
    ex = m.wait(10)
    assert ex is not None and ex.reason == "stopped"
    m.close()
    assert _fds() == fds
    assert len(os.listdir("/proc/self/task")) == task_threads_before


def test_guest_ram_bounds_are_checked():
    with Machine(memory=16 << 20) as m:
        with pytest.raises(QVError):
            m.write_phys((16 << 20) - 2, b"1234")
        with pytest.raises(QVError):
            m.read_phys(0xC0000000, 4)
        m.write_phys(0x1000, b"abcd")
        assert m.read_phys(0x1000, 4) == b"abcd"


def test_prealloc_and_numa_node_0_run_a_guest(guest):
    g = guest("long_hello")
    numa = 0 if Path("/sys/devices/system/node/node0").exists() else None
    with Machine(memory=64 << 20, prealloc=True, numa_node=numa) as m:
        load_flat(m, g.binary, g.mode, g.load)
        m.start()
        ex = m.wait(30)
        assert ex is not None and ex.status == 7


@pytest.mark.parametrize("size,kib", [("2M", 2048), ("1G", 1048576)])
def test_hugepage_backed_guest_runs_when_the_pool_allows(guest, size: str, kib: int):
    pool = probe().hugepages.get(size)
    need = 1 if size == "1G" else 16
    if pool is None or pool.free < need:
        pytest.skip(f"the {size} hugepage pool has fewer than {need} free pages")
    g = guest("long_hello")
    r_mem = need * kib * 1024
    with Machine(memory=r_mem, hugepages=size) as m:
        load_flat(m, g.binary, g.mode, g.load)
        m.start()
        ex = m.wait(30)
        assert ex is not None and ex.status == 7
