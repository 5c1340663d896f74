"""Boot time of the project's guest kernel to init, against QEMU booting the same kernel and
initramfs in the same run.

QuantaVirt: the guest kernel's vmlinux (PVH entry, 2 vCPUs, 256 MiB, the quantavirt.guest
initramfs). The end point is init's boot-timer write (MMIO page QV_BOOT_TIMER_MMIO, from
`qv.boot_timer=` through busybox devmem) on hardware KVM; on an emulating backend user space
cannot run, so the end point is the console line "Run /init as init process" instead (the
kernel prints it just before it executes init). Reported with it: KVM exits, instructions the
completion fallback completed, and the VMM's own CPU time: user-mode time of every thread
(device emulation, the fallback, the console pump) plus kernel time of the non-vCPU threads.
The vCPU threads' kernel time is guest execution on this backend and is not counted. Goal:
the VMM's share under 5 % of the boot.

QEMU: ``-accel kvm`` first; on an emulating backend it stops at the first emulation failure
(reported), and then ``-accel tcg`` gives the reference figure, to the same console line.

Run: ``.venv/bin/python -m pytest benchmarks/bench_linux_boot.py --benchmark-only -s``
(needs /dev/kvm and scripts/build-guest-kernel's cached kernel; takes minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantavirt._ffi import lib
from quantavirt.guest import build_initramfs
from quantavirt.vm import VM

pytestmark = [pytest.mark.kvm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
MARK = b"Run /init as init process"
CMDLINE = "console=ttyS0 panic=-1 qv.action=poweroff"
TIMEOUT = 1200.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _guest_kernel() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "build-guest-kernel")], check=True,
                         capture_output=True, text=True, timeout=1800)
    return Path(out.stdout.strip().splitlines()[-1]) / "vmlinux"


def _thread_times() -> dict[str, tuple[float, float]]:
    """{"tid:name": (user s, system s)} of every thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[f"{tid}:{name}"] = (int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK)
    return out


def _vmm_cpu(before: dict[str, tuple[float, float]],
             after: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """(VMM CPU seconds, guest seconds = vCPU threads' kernel time) between two snapshots."""
    vmm = guest = 0.0
    for key, (u, s) in after.items():
        u0, s0 = before.get(key, (0.0, 0.0))
        if key.split(":", 1)[1].startswith("qv-vcpu"):
            vmm += u - u0
            guest += s - s0
        else:
            vmm += (u - u0) + (s - s0)
    return vmm, guest


def _quantavirt_boot(kernel: Path, initrd: Path, tmp: Path) -> dict[str, float]:
    cfg = {"name": "bench", "cpu": {"count": 2}, "memory": {"size": "256M"},
           "boot": {"kernel": str(kernel), "initrd": str(initrd),
                    "cmdline": f"{CMDLINE} qv.boot_timer={lib.QV_BOOT_TIMER_MMIO:#x}"}}
    console = bytearray()
    before = _thread_times()
    t0 = time.monotonic()
    with VM(cfg, log_path=str(tmp / "vm.log")) as vm:
        emulating = vm.host.kvm_backend == "emulating"
        vm.start()
        t_start = time.monotonic()
        end = None
        while time.monotonic() - t_start < TIMEOUT:
            console += vm.console.read(0.05)
            st = vm.stats()
            if not emulating and st.boot_timer_ns:
                end = st.boot_timer_ns / 1e9
                break
            if emulating and MARK in console:
                end = time.monotonic() - t_start
                break
            if vm.wait(0) is not None:
                break
        after = _thread_times()
        stats = vm.stats()
        if vm.state == "RUNNING":
            vm.stop()
    (tmp / "quantavirt-console.txt").write_bytes(bytes(console))
    assert end is not None, bytes(console[-2000:]).decode(errors="replace")
    vmm, guest = _vmm_cpu(before, after)
    return {"seconds": end, "setup_seconds": t_start - t0, "exits": stats.exits_total,
            "pio_exits": stats.pio_exits, "mmio_exits": stats.mmio_exits,
            "completed_insns": stats.completed_insns, "vmm_cpu_seconds": vmm,
            "vcpu_kernel_seconds": guest, "vmm_share": vmm / end,
            "end_point": "boot timer" if not emulating else "Run /init (console)"}


def _qemu_boot(kernel: Path, initrd: Path, accel: str) -> dict[str, object]:
    """Seconds until QEMU's console shows MARK, or the reason it stopped first."""
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu
    cmd = [qemu, "-accel", accel, "-smp", "2", "-m", "256", "-nographic", "-nodefaults",
           "-no-reboot", "-serial", "stdio", "-kernel", str(kernel), "-initrd", str(initrd),
           "-append", CMDLINE]
    if accel == "kvm":
        cmd[3:3] = ["-cpu", "host"]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = bytearray()
    assert p.stdout is not None
    os.set_blocking(p.stdout.fileno(), False)
    try:
        while time.monotonic() - t0 < TIMEOUT:
            chunk = p.stdout.read(65536) or b""
            out += chunk
            if MARK in out:
                return {"seconds": time.monotonic() - t0, "ok": True}
            if p.poll() is not None and not chunk:
                tail = bytes(out[-600:]).decode(errors="replace")
                return {"ok": False, "why": f"exited with {p.returncode}: {tail}"}
            if not chunk:
                time.sleep(0.05)
        return {"ok": False, "why": "timeout"}
    finally:
        p.kill()
        p.wait()


@pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm")
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no QEMU")
def test_boot_to_init_vs_qemu(benchmark, tmp_path: Path) -> None:
    kernel = _guest_kernel()
    initrd = build_initramfs(tmp_path / "initramfs.cpio")
    result: dict[str, float] = {}

    def once() -> float:
        result.update(_quantavirt_boot(kernel, initrd, tmp_path))
        return float(result["seconds"])

    benchmark.pedantic(once, rounds=1, iterations=1)
    qemu_kvm = _qemu_boot(kernel, initrd, "kvm")
    qemu = qemu_kvm if qemu_kvm["ok"] else _qemu_boot(kernel, initrd, "tcg")
    benchmark.extra_info.update(result)
    benchmark.extra_info["qemu_kvm"] = qemu_kvm
    benchmark.extra_info["qemu_reference"] = {"accel": "kvm" if qemu_kvm["ok"] else "tcg",
                                              **qemu}
    print(f"\nQuantaVirt: {result['seconds']:.1f} s to {result['end_point']} "
          f"(+{result['setup_seconds']:.2f} s VM setup), {result['exits']} exits "
          f"({result['pio_exits']} PIO, {result['mmio_exits']} MMIO), "
          f"{result['completed_insns']} completed instructions, VMM CPU "
          f"{result['vmm_cpu_seconds']:.2f} s = {100 * result['vmm_share']:.2f} % of the boot "
          f"(goal < 5 %), vCPU kernel time {result['vcpu_kernel_seconds']:.1f} s")
    print(f"QEMU -accel kvm: {qemu_kvm}")
    print(f"QEMU reference ({benchmark.extra_info['qemu_reference']['accel']}): {qemu}",
          file=sys.stdout)
    assert result["vmm_share"] < 0.5  # sanity; the goal (5 %) is reported, not asserted
