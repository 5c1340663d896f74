"""quantavirt.VM and `python -m quantavirt launch`: lifecycle, console stream and log,
exit statuses, --timeout, the TTY escape key, and the refusals before a guest runs."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

import quantavirt
from quantavirt.errors import QVError
from quantavirt.host import EMULATING_BACKEND_CMDLINE, HostInfo
from quantavirt.vm import VM, effective_cmdline

pytestmark = pytest.mark.kvm

CONFIG = {"name": "t", "cpu": {"count": 1}, "memory": {"size": "64M"}}


def _launch(args: list[str], env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "quantavirt", "launch", *args],
                          capture_output=True, timeout=timeout, env=env)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A config file `launch` accepts (validated: 128M minimum, one disk)."""
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\0" * 65536)
    p = tmp_path / "vm.json"
    p.write_text(json.dumps({**CONFIG, "memory": {"size": "128M"},
                             "storage": [{"path": str(disk)}]}))
    return p


@pytest.fixture
def flat(guest, tmp_path: Path):
    def get(name: str) -> Path:
        g = guest(name)
        p = tmp_path / f"{name}.bin"
        p.write_bytes(g.binary)
        return p
    return get


def test_vm_poweroff_console_stream_and_log(guest, tmp_path: Path):
    log = tmp_path / "console.log"
    config = {**CONFIG, "console": {"type": "serial", "log": str(log)}}
    g = guest("poweroff")
    vm = quantavirt.VM(config, flat_binary=g.binary, flat_mode=g.mode, flat_load=g.load)
    with vm:
        assert vm.state == "CREATED"
        vm.start()
        assert vm.state == "RUNNING"
        with pytest.raises(QVError) as e:
            vm.start()
        assert e.value.name == "QV_ERR_STATE"
        out = b"".join(vm.console)
        ex = vm.wait(10)
        assert ex is not None and ex.reason == "poweroff"
        assert vm.exit_status == 0 and vm.state == "STOPPED"
    assert vm.state == "DESTROYED"
    assert out == b"powering off\n"
    assert log.read_bytes() == b"powering off\n"


def test_vm_stop_spinning_guest(guest):
    g = guest("spin")
    with VM(CONFIG, flat_binary=g.binary, flat_mode=g.mode, flat_load=g.load) as vm:
        with pytest.raises(QVError) as e:
            vm.stop()
        assert e.value.name == "QV_ERR_STATE"
        vm.start()
        assert vm.wait(0.3) is None
        ex = vm.stop()
        assert ex.reason == "stopped"
        assert b"".join(vm.console) == b"spinning\n"


def test_vm_without_kernel_is_firmware_notsup():
    with pytest.raises(QVError) as e:
        VM(CONFIG)
    assert e.value.name == "QV_ERR_NOTSUP" and "firmware boot not supported yet" in str(e.value)


def test_vm_missing_kernel_is_noent(tmp_path: Path):
    config = {**CONFIG, "boot": {"kernel": str(tmp_path / "vmlinuz")}}
    with pytest.raises(QVError) as e:
        VM(config)
    assert e.value.name == "QV_ERR_NOENT" and e.value.path == "boot.kernel"


def test_vm_kernel_of_neither_format_is_inval(tmp_path: Path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"\0" * 4096)
    with pytest.raises(QVError) as e:
        VM({**CONFIG, "boot": {"kernel": str(kernel)}})
    assert e.value.name == "QV_ERR_INVAL" and e.value.path == "boot.kernel"


def test_launch_invalid_config_is_qv_error(tmp_path: Path):
    p = tmp_path / "vm.json"
    p.write_text(json.dumps({**CONFIG, "memory": {"size": "64M"}}))
    r = _launch([str(p)])
    assert r.returncode == 1
    assert b"QV_ERR_INVAL" in r.stderr and b"memory.size" in r.stderr


def test_bad_memory_size_is_inval():
    with pytest.raises(QVError) as e:
        VM({**CONFIG, "memory": {"size": "lots"}})
    assert e.value.path == "memory.size"


def test_effective_cmdline_adapts_only_on_emulating_backend():
    boot = {"cmdline": "console=ttyS0 noxsave"}
    emulating = HostInfo(kvm_backend="emulating",
                         guest_cmdline_adaptations=EMULATING_BACKEND_CMDLINE)
    line = effective_cmdline(boot, emulating)
    assert line.startswith("console=ttyS0 noxsave")
    assert line.count("noxsave") == 1 and "clearcpuid=" in line
    assert effective_cmdline(boot, HostInfo(kvm_backend="hardware")) == "console=ttyS0 noxsave"


def test_launch_poweroff_streams_console_exit_0(config_file: Path, flat):
    r = _launch([str(config_file), "--flat", str(flat("poweroff"))])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"powering off\n"


def test_launch_debug_exit_status(config_file: Path, flat):
    r = _launch([str(config_file), "--flat", str(flat("long_hello"))])
    assert r.returncode == 7
    assert r.stdout == b"hello from long mode\n"


def test_launch_reset_exit_3(config_file: Path, tmp_path: Path):
    reset = tmp_path / "reset.bin"
    reset.write_bytes(bytes.fromhex("b0fee664f4"))  # mov al,0xfe; out 0x64,al; hlt
    r = _launch([str(config_file), "--flat", str(reset)])
    assert r.returncode == 3
    assert b"reset" in r.stderr


def test_launch_timeout(config_file: Path, flat):
    t = time.monotonic()
    r = _launch([str(config_file), "--flat", str(flat("spin")), "--timeout", "1"])
    assert r.returncode == 1
    assert b"QV_ERR_TIMEOUT (-11)" in r.stderr
    assert r.stdout == b"spinning\n"
    assert time.monotonic() - t < 30


def test_launch_guest_failure_reports_qv_error(config_file: Path, tmp_path: Path):
    ud2 = tmp_path / "ud2.bin"
    ud2.write_bytes(b"\x0f\x0b")
    r = _launch([str(config_file), "--flat", str(ud2)])
    assert r.returncode == 1
    assert r.stderr.startswith(b"Error: QV_ERR_GUEST (-14)")
    assert b"RIP=" in r.stderr


def test_launch_firmware_boot_refused(config_file: Path):
    r = _launch([str(config_file)])
    assert r.returncode == 1
    assert b"QV_ERR_NOTSUP" in r.stderr and b"firmware boot not supported yet" in r.stderr


def test_launch_without_kvm_is_novmx(config_file: Path, flat, tmp_path: Path):
    env = {**os.environ, "QUANTAVIRT_KVM_DEVICE": str(tmp_path / "nokvm")}
    r = _launch([str(config_file), "--flat", str(flat("poweroff"))], env=env)
    assert r.returncode == 1
    assert b"Error: QV_ERR_NOVMX (-3)" in r.stderr and b"modprobe" in r.stderr


def test_launch_on_a_terminal_escape_q_stops(config_file: Path, flat):
    spin = str(flat("spin"))
    pid, fd = pty.fork()
    if pid == 0:  # child: launch on the pty
        os.execv(sys.executable, [sys.executable, "-m", "quantavirt", "launch",
                                  str(config_file), "--flat", spin])
    out = b""
    deadline = time.monotonic() + 30
    try:
        while b"spinning" not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                out += os.read(fd, 4096)
        assert b"Ctrl-] q" in out and b"spinning" in out
        os.write(fd, b"\x1dq")
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    pass
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("launch did not stop on Ctrl-] q")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)


def test_launch_on_a_terminal_detach_then_ctrl_c(config_file: Path, flat):
    spin = str(flat("spin"))
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "quantavirt", "launch",
                                  str(config_file), "--flat", spin])
    out = b""
    deadline = time.monotonic() + 30
    status = None
    try:
        while b"spinning" not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                out += os.read(fd, 4096)
        os.write(fd, b"\x1dd")
        while b"detached" not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                out += os.read(fd, 4096)
        assert b"console detached" in out
        os.write(fd, b"\x03")  # Ctrl-C: the terminal is in normal mode again -> SIGINT
        while time.monotonic() < deadline:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                break
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    pass
        if status is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("launch did not stop on Ctrl-C after detaching")
        assert os.waitstatus_to_exitcode(status) == 130
    finally:
        os.close(fd)
