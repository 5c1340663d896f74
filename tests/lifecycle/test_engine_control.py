"""Engine-level run-time control: pause really parks the vCPUs (a counting guest's counter
stands still), resume lets them run on, the ACPI power button sets PWRBTN_STS and raises the
SCI that a guest handles, vCPU thread ids are real threads of this process."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable

import pytest

from quantavirt.engine import Machine, load_flat
from quantavirt.errors import QVError

from .conftest import Guest, needs_kvm

pytestmark = needs_kvm
COUNTER = 0x200000


def counter(m: Machine) -> int:
    return int(struct.unpack("<Q", m.read_phys(COUNTER, 8))[0])


def wait_for(pred: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.mark.parametrize("cpus", [1, 2])
def test_pause_stops_counting_and_resume_continues(guest: Callable[[str], Guest],
                                                   cpus: int) -> None:
    g = guest("count")
    with Machine(memory=64 << 20, cpus=cpus, test_device=True) as m:
        load_flat(m, g.binary, g.mode, g.load)
        with pytest.raises(QVError) as e:
            m.pause()
        assert e.value.name == "QV_ERR_STATE"
        m.start()
        wait_for(lambda: counter(m) > 1000)
        for _ in range(3):
            m.pause()
            assert m.paused
            frozen = counter(m)
            time.sleep(0.4)
            assert counter(m) == frozen
            with pytest.raises(QVError) as e:
                m.pause()
            assert e.value.name == "QV_ERR_STATE"
            m.resume()
            assert not m.paused
            wait_for(lambda frozen=frozen: counter(m) > frozen + 1000)
        with pytest.raises(QVError) as e:
            m.resume()
        assert e.value.name == "QV_ERR_STATE"
        assert m.wait(0) is None  # still running


def test_stop_and_destroy_while_paused(guest: Callable[[str], Guest]) -> None:
    g = guest("count")
    m = Machine(memory=64 << 20, cpus=2, test_device=True)
    load_flat(m, g.binary, g.mode, g.load)
    m.start()
    wait_for(lambda: counter(m) > 100)
    m.pause()
    m.stop()
    ex = m.wait(10)
    assert ex is not None and ex.reason == "stopped"
    m.close()
    m2 = Machine(memory=64 << 20, cpus=2, test_device=True)
    load_flat(m2, g.binary, g.mode, g.load)
    m2.start()
    wait_for(lambda: counter(m2) > 100)
    m2.pause()
    m2.close()  # joins the parked threads: must not hang


def test_vcpu_tids_are_threads_of_this_process(guest: Callable[[str], Guest]) -> None:
    g = guest("count")
    with Machine(memory=64 << 20, cpus=2, test_device=True) as m:
        load_flat(m, g.binary, g.mode, g.load)
        assert m.vcpu_tids() == [0, 0]
        m.start()
        wait_for(lambda: all(m.vcpu_tids()))
        tids = m.vcpu_tids()
        assert len(set(tids)) == 2
        for tid in tids:
            assert os.path.exists(f"/proc/self/task/{tid}")


def test_power_button_raises_sci_the_guest_handles(guest: Callable[[str], Guest]) -> None:
    g = guest("pwrbtn")
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    try:
        with Machine(memory=64 << 20, console_fd=wfd, test_device=True) as m:
            load_flat(m, g.binary, g.mode, g.load)
            with pytest.raises(QVError) as e:
                m.power_button()
            assert e.value.name == "QV_ERR_STATE"
            m.start()
            out = b""
            deadline = time.monotonic() + 30
            while b"armed" not in out:
                assert time.monotonic() < deadline
                try:
                    out += os.read(rfd, 4096)
                except BlockingIOError:
                    time.sleep(0.02)
            assert m.pm1_state() == (0, 0x100)  # PWRBTN_EN on, nothing pending
            assert m.wait(0.3) is None  # the guest waits for the button
            m.power_button()
            ex = m.wait(30)
            assert ex is not None and ex.reason == "poweroff", ex
            # The handler saw PWRBTN_STS, cleared it, and saw it clear.
            assert m.stats().results == [0x100, 0]
            assert m.pm1_state() == (0, 0x100)
    finally:
        os.close(rfd)
        os.close(wfd)


def test_power_button_status_without_enable(guest: Callable[[str], Guest]) -> None:
    """A guest that never enabled PWRBTN_EN sees the status bit but gets no interrupt."""
    g = guest("count")
    with Machine(memory=64 << 20, test_device=True) as m:
        load_flat(m, g.binary, g.mode, g.load)
        m.start()
        wait_for(lambda: counter(m) > 100)
        m.power_button()
        assert m.pm1_state() == (0x100, 0)
        assert m.wait(0.3) is None
