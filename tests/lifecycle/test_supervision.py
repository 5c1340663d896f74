"""Supervision: each VM runs in its own process; kill -9 of one leaves the daemon and the other
VMs running and the killed VM CRASHED with the reason; a restarted daemon lists the same VMs
in the same states and can still control the VMs that kept running."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import Api, Daemon, Guest, free_port, needs_kvm, start_daemon

pytestmark = needs_kvm


def _start_counters(api: Api, make_config: Callable[..., dict[str, Any]], g: Guest,
                    guests_dir: Path, names: list[str]) -> dict[str, int]:
    pids = {}
    for name in names:
        shutil.copy(g.path, guests_dir / f"{name}.bin")
        assert api.request("POST", "/vms", make_config(name)).status == 201
        r = api.request("POST", f"/vms/{name}/start")
        assert r.status == 200, r.body
        pids[name] = r.body["pid"]
    return pids


def test_kill9_of_a_vm_process(daemon: Daemon, make_config: Callable[..., dict[str, Any]],
                               guest: Callable[[str], Guest], test_guests_dir: Path) -> None:
    api = Api(daemon, "tcp")
    pids = _start_counters(api, make_config, guest("count"), test_guests_dir, ["victim", "other"])
    os.kill(pids["victim"], signal.SIGKILL)
    rec = api.wait_state("victim", "CRASHED", timeout=10)
    assert rec["pid"] is None
    assert rec["last_error"]["name"] == "QV_ERR_INTERNAL"
    assert "killed by signal 9" in rec["last_error"]["message"]
    assert daemon.proc.poll() is None
    assert "killed by signal 9" in daemon.log.read_text()
    assert "[ERROR] quantavirt::lifecycle: VM victim" in daemon.log.read_text()
    # The other VM is untouched and still runs (its vCPU keeps consuming CPU).
    other = api.request("GET", "/vms/other").body
    assert other["state"] == "RUNNING" and other["pid"] == pids["other"]
    before = api.request("GET", "/vms/other/stats").body["vcpus"][0]["cpu_seconds"]
    time.sleep(0.5)
    after = api.request("GET", "/vms/other/stats").body["vcpus"][0]["cpu_seconds"]
    assert after > before
    # A crashed VM is stopped for good: it can be started again, or destroyed.
    r = api.request("POST", "/vms/victim/pause")
    assert r.status == 409 and r.error_name == "QV_ERR_STATE"
    assert api.request("POST", "/vms/victim/start").body["state"] == "RUNNING"
    for name in ("victim", "other"):
        assert api.request("DELETE", f"/vms/{name}").status == 200


def test_daemon_restart_keeps_vms_and_states(daemon: Daemon, tmp_path: Path,
                                             make_config: Callable[..., dict[str, Any]],
                                             guest: Callable[[str], Guest],
                                             test_guests_dir: Path) -> None:
    api = Api(daemon, "unix")
    pids = _start_counters(api, make_config, guest("count"), test_guests_dir,
                           ["running", "paused", "stopped"])
    assert api.request("POST", "/vms", make_config("created")).status == 201
    assert api.request("POST", "/vms/paused/pause").status == 200
    assert api.request("POST", "/vms/stopped/stop", {"force": True}).status == 200
    before = {v["name"]: v["state"] for v in api.request("GET", "/vms").body["vms"]}
    assert before == {"created": "CREATED", "paused": "PAUSED", "running": "RUNNING",
                      "stopped": "STOPPED"}
    daemon.stop()
    assert not daemon.socket.exists()
    # The VMs live on without the daemon.
    assert os.path.exists(f"/proc/{pids['running']}")
    second = start_daemon(daemon.home, daemon.socket, free_port(), daemon.env,
                          tmp_path / "daemon2.log")
    try:
        api2 = Api(second, "tcp")
        after = {v["name"]: v["state"] for v in api2.request("GET", "/vms").body["vms"]}
        assert after == before
        assert api2.request("GET", "/vms/running").body["pid"] == pids["running"]
        # Still controllable, and a duplicate name is still refused.
        assert api2.request("POST", "/vms/paused/resume").body["state"] == "RUNNING"
        r = api2.request("POST", "/vms", make_config("created"))
        assert r.status == 409 and r.error_name == "QV_ERR_EXIST"
        # A VM killed while no daemon ran is found CRASHED by the new one.
        os.kill(pids["running"], signal.SIGKILL)
        rec = api2.wait_state("running", "CRASHED", timeout=10)
        assert "ended unexpectedly" in rec["last_error"]["message"] \
            or "signal" in rec["last_error"]["message"]
        for name in after:
            assert api2.request("DELETE", f"/vms/{name}").status == 200
    finally:
        second.stop()


def test_guest_failure_is_recorded(daemon: Daemon, make_config: Callable[..., dict[str, Any]],
                                   guest: Callable[[str], Guest], test_guests_dir: Path) -> None:
    """A guest that crashes ends its VM STOPPED with the QV error and a register dump in
    vm.log; the daemon and the other VMs run on."""
    api = Api(daemon, "unix")
    _start_counters(api, make_config, guest("count"), test_guests_dir, ["bystander"])
    shutil.copy(guest("crash").path, test_guests_dir / "faulty.bin")
    api.request("POST", "/vms", make_config("faulty"))
    assert api.request("POST", "/vms/faulty/start").status == 200
    rec = api.wait_state("faulty", "STOPPED", timeout=30)
    assert rec["last_exit"]["reason"] == "error"
    assert rec["last_error"]["name"] == "QV_ERR_GUEST"
    vm_log = (daemon.home / "vms" / "faulty" / "vm.log").read_text()
    assert "[ERROR] quantavirt::kvm:" in vm_log and "RIP=" in vm_log
    assert "[ERROR] quantavirt::lifecycle: VM faulty: QV_ERR_GUEST" in \
        (daemon.home / "vms" / "faulty" / "runner.log").read_text()
    assert api.request("GET", "/vms/bystander").body["state"] == "RUNNING"
    assert daemon.proc.poll() is None
    for name in ("faulty", "bystander"):
        assert api.request("DELETE", f"/vms/{name}").status == 200


def test_sigterm_to_a_runner_stops_its_vm_cleanly(daemon: Daemon,
                                                  make_config: Callable[..., dict[str, Any]],
                                                  guest: Callable[[str], Guest],
                                                  test_guests_dir: Path) -> None:
    api = Api(daemon, "tcp")
    pids = _start_counters(api, make_config, guest("count"), test_guests_dir, ["term"])
    sock = daemon.home / "vms" / "term" / "control.sock"
    assert sock.exists() and (sock.stat().st_mode & 0o777) == 0o600
    os.kill(pids["term"], signal.SIGTERM)
    rec = api.wait_state("term", "STOPPED", timeout=15)
    assert rec["last_exit"] == {"reason": "stopped", "status": None}
    assert rec["last_error"] is None
    assert not sock.exists()
