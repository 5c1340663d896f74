"""Port and MMIO exits through the device bus, the legacy devices, and SMP bring-up."""

from __future__ import annotations

import struct

import pytest

from quantavirt.engine import run_flat

pytestmark = pytest.mark.kvm


def test_port_and_mmio_devices_and_i8042_reset(guest):
    g = guest("devices")
    r = run_flat(g.binary, g.load, g.mode, console_input=b"ok\n")
    assert r.exit.reason == "reset", r.exit
    assert r.stats.results == [
        0x44545651, 0x11223344, 0x1122AA44, 0xFFFFFFFF, 0xFFFFFFFF,  # MMIO, unclaimed
        0x02, 0x80, 0x20,                                            # RTC
        0x5A, 0x90,                                                  # 8250 scratch, loopback
        ord("o"), ord("k"), ord("\n"),                               # serial input
    ]
    assert r.stats.mmio_exits >= 5
    assert r.stats.unhandled_mmio == 1
    assert r.stats.unhandled_pio == 1
    assert r.stats.exits_by_reason["mmio"] == r.stats.mmio_exits
    assert r.stats.exits_by_reason["io"] == r.stats.pio_exits


def test_mmio_test_device_absent_unless_asked(guest):
    g = guest("devices")
    r = run_flat(g.binary, g.load, g.mode, console_input=b"\n", test_device=False)
    assert r.stats.results[:3] == [0xFFFFFFFF] * 3


@pytest.mark.parametrize("cpus", [2, 4])
def test_smp_bring_up_with_init_sipi_sipi(guest, cpus):
    g = guest("smp")
    r = run_flat(g.binary, g.load, g.mode, cpus=cpus, data={0x7004: struct.pack("<I", cpus)})
    assert r.exit.reason == "debug-exit", r.exit
    aps = cpus - 1
    assert r.stats.results == [aps, 8 * aps]
    assert r.exit.status == 0
    # Each AP's real-mode popcnt ran on its own vCPU thread: completed there if the backend
    # could not execute it.
    assert r.stats.completed_insns == r.stats.exits_by_reason.get("internal_error", 0)
    # KVM_RUN may return EAGAIN once per AP after its SIPI; the loop retries it.
    assert r.stats.run_eagain <= aps


def test_serial_interrupts_through_the_in_kernel_pic(guest):
    g = guest("serial_irq")
    r = run_flat(g.binary, g.load, g.mode, console_input=b"xy")
    assert r.exit.reason == "debug-exit" and r.exit.status == 0, r.exit
    # THRE interrupt (IIR 2), then two receive interrupts (IIR 4) with the typed bytes.
    assert r.stats.results == [0xA2, 0xA4, 0xB00 | ord("x"), 0xA4, 0xB00 | ord("y")]


def test_boot_timer_port():
    # mov $0x440,%dx; mov $123,%al; out %al,(%dx); out %al,$0xf4
    code = bytes.fromhex("66ba4004b07beee6f4")
    r = run_flat(code, 0x100000, "long")
    assert r.exit.status == 123
    assert r.stats.boot_timer_value == 123
    assert 0 < r.stats.boot_timer_ns < 30 * 10**9


def test_guest_failure_register_dump_goes_to_the_vm_log(tmp_path):
    log = tmp_path / "vm.log"
    r = run_flat(b"\x0f\x0b", 0x100000, "long", log_path=str(log))
    assert r.exit.reason == "error"
    text = log.read_text()
    assert "[INFO] quantavirt::kvm: VM created" in text
    assert "[ERROR] quantavirt::kvm:" in text and "RIP=" in text and "CR3=" in text
