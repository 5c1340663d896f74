"""The management API against a real `quantavirt serve` daemon, over its Unix socket and over
TCP: every endpoint, authentication, malformed input, wrong-state transitions, and VMs that
really run (the freestanding test guests through the runner's test hook)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import Api, Guest, needs_kvm


def install_guest(dir_: Path, vm: str, g: Guest) -> None:
    shutil.copy(g.path, dir_ / f"{vm}.bin")


def test_openapi_document(api: Api) -> None:
    r = api.request("GET", "/openapi.json")
    assert r.status == 200
    paths = r.body["paths"]
    for p in ("/vms", "/vms/{name}", "/vms/{name}/start", "/vms/{name}/stop",
              "/vms/{name}/pause", "/vms/{name}/resume", "/vms/{name}/reset",
              "/vms/{name}/migrate", "/vms/{name}/clone", "/vms/{name}/attest",
              "/vms/{name}/stats", "/vms/{name}/snapshots",
              "/vms/{name}/snapshots/{snap}/restore", "/vms/{name}/snapshots/{snap}"):
        assert p in paths, p
    assert set(paths["/vms/{name}"]) == {"get", "patch", "delete"}


@pytest.mark.parametrize("method,path", [
    ("GET", "/vms"), ("POST", "/vms"), ("GET", "/vms/secret-vm"), ("DELETE", "/vms/secret-vm"),
    ("POST", "/vms/secret-vm/start"), ("GET", "/vms/secret-vm/stats"),
    ("GET", "/openapi.json"), ("GET", "/no/such/endpoint")])
def test_auth_required_and_leaks_nothing(api: Api, make_config: Callable[..., dict[str, Any]],
                                         method: str, path: str) -> None:
    assert api.request("POST", "/vms", make_config("secret-vm")).status == 201
    wrong = api.daemon.token[:-1] + ("A" if api.daemon.token[-1] != "A" else "B")
    for token in (None, "", "wrong", wrong, api.daemon.token + "x"):
        r = api.request(method, path, {"name": "x"}, token=token)
        assert r.status == 401
        assert r.error_name == "QV_ERR_PERM"
        assert r.body["error"]["message"] == "authentication required"
        assert b"secret-vm" not in r.raw and api.daemon.token.encode() not in r.raw
        # The same answer whatever the path: no hint whether a VM or endpoint exists.
        assert api.request("GET", "/vms", token=token).raw == r.raw
    assert api.request("GET", "/vms").status == 200
    mode = (api.daemon.home / "api-token").stat().st_mode & 0o777
    assert mode == 0o600


@pytest.mark.parametrize("method,path", [("POST", "/vms"), ("POST", "/vms/a/stop"),
                                         ("PATCH", "/vms/a"), ("POST", "/vms/a/start")])
@pytest.mark.parametrize("raw", [b"{bad json", b"[1, 2", b'{"a": NaN}', b"\xff\xfe",
                                 b'{"a": 1, "a": 2}'])
def test_malformed_json_is_400_inval(api: Api, make_config: Callable[..., dict[str, Any]],
                                     method: str, path: str, raw: bytes) -> None:
    api.request("POST", "/vms", make_config("a"))
    r = api.request(method, path, raw=raw)
    assert r.status == 400, r.body
    assert r.error_name == "QV_ERR_INVAL"
    assert set(r.body["error"]) >= {"code", "name", "message", "detail", "subsystem"}
    assert r.body["error"]["code"] == -1


def test_bad_requests(api: Api, make_config: Callable[..., dict[str, Any]]) -> None:
    r = api.request("POST", "/vms", {"name": "bad", "cpu": {"count": 0}})
    assert r.status == 400 and r.error_name == "QV_ERR_INVAL"
    assert len(r.body["error"]["problems"]) >= 2  # every problem, each with its path
    assert api.request("POST", "/vms", [1]).status == 400
    assert api.request("GET", "/vms/..").status in (400, 404)
    assert api.request("GET", "/vms/bad%2Fname").status in (400, 404)
    assert api.request("GET", "/vms/nope").error_name == "QV_ERR_NOENT"
    assert api.request("PUT", "/vms").status == 405
    api.request("POST", "/vms", make_config("a"))
    assert api.request("POST", "/vms/a/stop", {"force": "yes"}).status == 400
    assert api.request("POST", "/vms/a/stop", {"timeout": -1}).status == 400
    assert api.request("POST", "/vms/a/start", [1]).status == 400
    r = api.request("PATCH", "/vms/a", {"name": "b"})
    assert r.status == 400 and r.error_name == "QV_ERR_INVAL"


def test_wrong_state_transitions(api: Api, make_config: Callable[..., dict[str, Any]]) -> None:
    assert api.request("POST", "/vms", make_config("a")).status == 201
    for op in ("stop", "pause", "resume", "reset"):
        r = api.request("POST", f"/vms/a/{op}")
        assert r.status == 409 and r.error_name == "QV_ERR_STATE", (op, r.body)
    r = api.request("GET", "/vms/a/stats")
    assert r.status == 409 and r.error_name == "QV_ERR_STATE"
    assert api.request("GET", "/vms/a").body["state"] == "CREATED"


def test_start_failure_is_reported(api: Api, make_config: Callable[..., dict[str, Any]]) -> None:
    """No kernel and no test guest: firmware boot has not landed -> 501, VM stays CREATED."""
    api.request("POST", "/vms", make_config("fw"))
    r = api.request("POST", "/vms/fw/start")
    assert r.status == 501 and r.error_name == "QV_ERR_NOTSUP"
    assert "firmware boot" in r.body["error"]["message"]
    rec = api.request("GET", "/vms/fw").body
    assert rec["state"] == "CREATED"
    assert rec["last_error"]["name"] == "QV_ERR_NOTSUP"


@pytest.mark.parametrize("suffix,method", [
    ("/migrate", "POST"), ("/clone", "POST"), ("/attest", "POST"), ("/snapshots", "GET"),
    ("/snapshots", "POST"), ("/snapshots/s1/restore", "POST"), ("/snapshots/s1", "DELETE")])
def test_unlanded_features_are_501(api: Api, make_config: Callable[..., dict[str, Any]],
                                   suffix: str, method: str) -> None:
    api.request("POST", "/vms", make_config("a"))
    r = api.request(method, f"/vms/a{suffix}", {} if method == "POST" else None)
    assert r.status == 501
    assert r.error_name == "QV_ERR_NOTSUP"
    assert "not implemented" in r.body["error"]["message"]
    assert api.request(method, f"/vms/missing{suffix}").status == 404


def test_create_show_patch_list_delete(api: Api,
                                       make_config: Callable[..., dict[str, Any]]) -> None:
    r = api.request("POST", "/vms", make_config("a", description="first"))
    assert r.status == 201 and r.body["state"] == "CREATED"
    r = api.request("POST", "/vms", make_config("a"))
    assert r.status == 409 and r.error_name == "QV_ERR_EXIST"
    shown = api.request("GET", "/vms/a").body
    assert shown["config"]["description"] == "first"
    assert shown["config"]["memory"]["size"] == "128M"
    r = api.request("PATCH", "/vms/a", {"description": "second",
                                         "memory": {"size": "256M", "max_size": "256M"}})
    assert r.status == 200
    shown = api.request("GET", "/vms/a").body
    assert shown["config"]["description"] == "second"
    assert shown["config"]["memory"]["size"] == "256M"
    assert shown["config"]["uuid"] == api.request("GET", "/vms/a").body["uuid"]
    r = api.request("PATCH", "/vms/a", {"cpu": {"count": 0}})
    assert r.status == 400 and r.error_name == "QV_ERR_INVAL"
    api.request("POST", "/vms", make_config("b"))
    assert [v["name"] for v in api.request("GET", "/vms").body["vms"]] == ["a", "b"]
    r = api.request("DELETE", "/vms/a")
    assert r.status == 200 and r.body["state"] == "DESTROYED"
    assert api.request("GET", "/vms/a").status == 404
    assert api.request("DELETE", "/vms/a").status == 404
    # The name is free again.
    assert api.request("POST", "/vms", make_config("a")).status == 201


def test_parallel_creates_exactly_one_wins(api: Api,
                                           make_config: Callable[..., dict[str, Any]]) -> None:
    results: list[int] = []
    lock = threading.Lock()
    go = threading.Barrier(12)

    def create() -> None:
        go.wait()
        r = api.request("POST", "/vms", make_config("race"))
        with lock:
            results.append(r.status)
            assert r.status == 201 or r.error_name == "QV_ERR_EXIST", r.body

    threads = [threading.Thread(target=create) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [409] * 11
    assert [v["name"] for v in api.request("GET", "/vms").body["vms"]] == ["race"]


def vcpu_seconds(api: Api, name: str) -> float:
    st = api.request("GET", f"/vms/{name}/stats").body
    return sum(v["cpu_seconds"] for v in st["vcpus"])


@needs_kvm
def test_running_vm_lifecycle(api: Api, make_config: Callable[..., dict[str, Any]],
                              guest: Callable[[str], Guest], test_guests_dir: Path) -> None:
    install_guest(test_guests_dir, "counter", guest("count"))
    assert api.request("POST", "/vms", make_config("counter", cpu={"count": 2})).status == 201
    r = api.request("POST", "/vms/counter/start")
    assert r.status == 200, r.body
    assert r.body["state"] == "RUNNING" and r.body["pid"] > 0
    r = api.request("POST", "/vms/counter/start")
    assert r.status == 409 and r.error_name == "QV_ERR_STATE"
    r = api.request("PATCH", "/vms/counter", {"description": "x"})
    assert r.status == 409 and r.error_name == "QV_ERR_STATE"
    time.sleep(0.5)
    st = api.request("GET", "/vms/counter/stats").body
    assert len(st["vcpus"]) == 2 and st["vcpus"][0]["tid"] > 0
    assert st["vcpus"][0]["cpu_seconds"] > 0
    assert st["exits"]["by_reason"].get("io", 0) >= 9  # "counting\n" on the serial port
    assert st["process"]["rss_bytes"] > 1 << 20
    # its raw disk is attached (virtio-blk) but this guest never touches it
    assert st["disk"]["read_bytes"] == st["disk"]["write_ops"] == 0
    assert [d["storage"] for d in st["disk"]["devices"]] == [0]
    # Pause: the vCPU threads stop consuming CPU; resume: they run again.
    assert api.request("POST", "/vms/counter/pause").body["state"] == "PAUSED"
    r = api.request("POST", "/vms/counter/pause")
    assert r.status == 409 and r.error_name == "QV_ERR_STATE"
    frozen = vcpu_seconds(api, "counter")
    time.sleep(0.6)
    assert vcpu_seconds(api, "counter") == frozen
    r = api.request("POST", "/vms/counter/stop")  # graceful stop of a paused VM
    assert r.status == 409 and r.error_name == "QV_ERR_STATE"
    assert api.request("POST", "/vms/counter/resume").body["state"] == "RUNNING"
    time.sleep(0.4)
    assert vcpu_seconds(api, "counter") > frozen + 0.1
    r = api.request("POST", "/vms/counter/reset")
    assert r.status == 200 and r.body["state"] == "RUNNING"
    assert api.request("GET", "/vms/counter/stats").body["resets"] == 1
    # This guest ignores the power button: the graceful stop times out, the VM runs on.
    r = api.request("POST", "/vms/counter/stop", {"timeout": 0.5})
    assert r.status == 504 and r.error_name == "QV_ERR_TIMEOUT"
    assert "has not enabled the ACPI power button" in r.body["error"]["detail"]
    assert api.request("GET", "/vms/counter").body["state"] == "RUNNING"
    r = api.request("POST", "/vms/counter/stop", {"force": True})
    assert r.status == 200 and r.body["state"] == "STOPPED"
    assert r.body["last_exit"]["reason"] == "stopped" and r.body["pid"] is None
    r = api.request("POST", "/vms/counter/stop", {"force": True})
    assert r.status == 409 and r.error_name == "QV_ERR_STATE"
    # A stopped VM starts again; a paused one can be stopped with force.
    assert api.request("POST", "/vms/counter/start").body["state"] == "RUNNING"
    assert api.request("POST", "/vms/counter/pause").body["state"] == "PAUSED"
    r = api.request("POST", "/vms/counter/stop", {"force": True})
    assert r.status == 200 and r.body["state"] == "STOPPED"
    assert api.request("POST", "/vms/counter/start").body["state"] == "RUNNING"
    r = api.request("DELETE", "/vms/counter")
    assert r.status == 200 and r.body["state"] == "DESTROYED"
    assert api.request("GET", "/vms").body["vms"] == []


@needs_kvm
def test_graceful_stop_by_power_button(api: Api, make_config: Callable[..., dict[str, Any]],
                                       guest: Callable[[str], Guest],
                                       test_guests_dir: Path) -> None:
    install_guest(test_guests_dir, "acpi", guest("pwrbtn"))
    api.request("POST", "/vms", make_config("acpi"))
    assert api.request("POST", "/vms/acpi/start").status == 200
    log = api.daemon.home / "vms" / "acpi" / "vm.log"
    # No waiting for the guest to arm PWRBTN_EN: a press before that stays in PM1_STS and
    # the SCI rises when the guest enables the event.
    r = api.request("POST", "/vms/acpi/stop", {"timeout": 30})
    assert r.status == 200, r.body
    assert r.body["state"] == "STOPPED"
    assert r.body["last_exit"] == {"reason": "poweroff", "status": 0}
    assert r.body["last_error"] is None
    assert "ACPI power button pressed" in log.read_text()
