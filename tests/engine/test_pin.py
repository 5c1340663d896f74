"""cpu.pin: each pinned vCPU thread is bound to its host CPU (checked in /proc while a
freestanding guest keeps every vCPU busy); a host CPU that does not exist is refused at create
with the config path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vm_helpers import GuestFactory, parse_cpu_list, spinning_vm, task_cpu, task_status

from quantavirt._ffi import ffi, lib
from quantavirt.engine import Machine
from quantavirt.errors import QVError
from quantavirt.vm import VM

pytestmark = pytest.mark.kvm

ONLINE = parse_cpu_list(Path("/sys/devices/system/cpu/online").read_text())
ALLOWED = os.sched_getaffinity(0)


def _config(count: int, pin: dict[str, int] | None) -> dict[str, object]:
    cpu: dict[str, object] = {"count": count}
    if pin is not None:
        cpu["pin"] = pin
    return {"name": "pin-test", "cpu": cpu, "memory": {"size": "128M"}}


def test_online_cpus_as_the_engine_reads_them() -> None:
    bitmap = ffi.new("uint8_t[]", 1024)
    n = lib.qv_host_online_cpus(bitmap, 8192)
    got = {c for c in range(8192) if bitmap[c // 8] >> (c % 8) & 1}
    assert n == len(ONLINE) and got == ONLINE


@pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two usable host CPUs")
def test_each_pinned_vcpu_thread_runs_only_on_its_host_cpu(
        guest: GuestFactory, tmp_path: Path) -> None:
    a, b = sorted(ALLOWED)[:2]
    pin = {"0": b, "1": a}  # crossed, so the binding cannot be an accident of creation order
    log = tmp_path / "vm.log"
    with spinning_vm(guest, _config(2, pin), str(log)) as vm:
        tids = vm.vcpu_tids()
        for i, tid in enumerate(tids):
            status = task_status(tid)
            assert status["Name"] == f"qv-vcpu{i}"
            assert parse_cpu_list(status["Cpus_allowed_list"]) == {pin[str(i)]}
            # The busy vCPU has run since the guest started, so where it ran last is telling.
            assert task_cpu(tid) == pin[str(i)]
    text = log.read_text()
    assert f"[INFO] quantavirt::kvm: vCPU 0 pinned to host CPU {b}" in text
    assert f"[INFO] quantavirt::kvm: vCPU 1 pinned to host CPU {a}" in text


def test_an_unpinned_vcpu_keeps_the_process_affinity(guest: GuestFactory) -> None:
    target = min(ALLOWED)
    with spinning_vm(guest, _config(2, {"1": target})) as vm:
        t0, t1 = vm.vcpu_tids()
        assert parse_cpu_list(task_status(t0)["Cpus_allowed_list"]) == ALLOWED
        assert parse_cpu_list(task_status(t1)["Cpus_allowed_list"]) == {target}


def test_no_pin_means_no_binding(guest: GuestFactory) -> None:
    with spinning_vm(guest, _config(2, None)) as vm:
        for tid in vm.vcpu_tids():
            assert parse_cpu_list(task_status(tid)["Cpus_allowed_list"]) == ALLOWED


def _missing_cpu() -> int:
    return next(c for c in range(8192) if c not in ONLINE)


def test_a_host_cpu_that_does_not_exist_is_refused_before_any_vcpu_runs() -> None:
    bad = _missing_cpu()
    with pytest.raises(QVError) as e:
        VM(_config(2, {"0": 0, "1": bad}), flat_binary=b"\xf4")
    assert e.value.name == "QV_ERR_NODEV"
    assert e.value.path == "cpu.pin.1"
    assert f"host CPU {bad} does not exist or is offline" in str(e.value)


@pytest.mark.parametrize("value", [-2, 8192, 1 << 30])
def test_out_of_range_host_cpus_from_the_c_interface(value: int) -> None:
    with pytest.raises(QVError) as e:
        Machine(memory=16 << 20, cpus=1, pin=[value])
    assert e.value.name == "QV_ERR_NODEV" and e.value.path == "cpu.pin.0"


def test_pin_list_must_match_the_vcpu_count() -> None:
    with pytest.raises(QVError) as e:
        Machine(memory=16 << 20, cpus=2, pin=[0])
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == "cpu.pin"


@pytest.mark.parametrize("pin, path", [({"2": 0}, "cpu.pin.2"), ({"0": "1"}, "cpu.pin.0"),
                                       ({"x": 0}, "cpu.pin.x"), ({"0": True}, "cpu.pin.0")])
def test_bad_pin_maps_from_an_unvalidated_config(pin: dict[str, object], path: str) -> None:
    with pytest.raises(QVError) as e:
        VM(_config(2, pin), flat_binary=b"\xf4")  # type: ignore[arg-type]
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == path
