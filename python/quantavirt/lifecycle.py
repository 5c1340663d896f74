"""VM lifecycle operations on the state directory, shared by the daemon (`quantavirt serve`)
and the local CLI: create, start, stop, pause, resume, reset, destroy, list, show, export,
patch, stats.

States (product documentation): CREATED -> RUNNING (start) -> PAUSED (pause) -> RUNNING
(resume); RUNNING -> STOPPED (stop: ACPI power button, or teardown with force); any ->
DESTROYED (destroy). A stopped or crashed VM may be started again. A runner process that died
without writing its final record (killed, crashed) is found by `reconcile` and its VM marked
CRASHED with the reason in last_error. Every transition from the wrong state is QV_ERR_STATE.
"""

from __future__ import annotations

import copy
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from quantavirt import records
from quantavirt.config.validate import validate
from quantavirt.errors import QVError
from quantavirt.logs import log
from quantavirt.runner import control_request, proc_start_time

SUBSYSTEM = "lifecycle"
START_TIMEOUT = 120.0
LIVE_STATES = ("RUNNING", "PAUSED")

#: Called with each runner Popen the start operation made (the daemon reaps and watches them).
SpawnHook = Callable[[str, "subprocess.Popen[bytes]"], None]


#: Set by the daemon: the exit reason ("was killed by signal 9") of a runner pid it started
#: (it reaps it), or None for a process it does not know.
exit_detail_hook: Callable[[int], str | None] | None = None


def how_it_ended(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"


def runner_alive(record: dict[str, Any]) -> bool:
    pid, started = record.get("pid"), record.get("pid_start")
    if not pid:
        return False
    return proc_start_time(int(pid)) == started


def reconcile(name: str, detail: str | None = None) -> dict[str, Any]:
    """The record, after marking a live-state VM whose runner is gone as CRASHED."""
    rec = records.read(name)
    if rec.get("state") not in LIVE_STATES or runner_alive(rec):
        return rec
    d = records.vm_dir(name)
    with records.flocked(d / "record.lock"):
        rec = records.read(name)
        if rec.get("state") not in LIVE_STATES or runner_alive(rec):
            return rec
        if detail is None and exit_detail_hook is not None and rec.get("pid"):
            detail = exit_detail_hook(int(rec["pid"]))
        why = detail or "ended unexpectedly"
        err = QVError("QV_ERR_INTERNAL", f"the VM process (pid {rec.get('pid')}) {why}")
        log("ERROR", SUBSYSTEM, f"VM {name}: {err.message}")
        rec.update(state="CRASHED", pid=None, pid_start=None, stopped_at=records.now(),
                   last_exit={"reason": "crashed", "status": None}, last_error=err.to_dict(),
                   updated_at=records.now())
        records.write_json(d / "record.json", rec)
    return rec


def _wrong_state(name: str, action: str, st: str) -> QVError:
    return QVError("QV_ERR_STATE", f"cannot {action} VM {name} in state {st}")


def create(doc: Any) -> dict[str, Any]:
    """Validate a config (QVMultiError listing every problem) and create the VM (CREATED)."""
    return records.create(validate(doc))


def list_vms() -> list[dict[str, Any]]:
    out = []
    for name in records.names():
        try:
            out.append(reconcile(name))
        except QVError:
            continue  # destroyed meanwhile
    return out


def show(name: str) -> dict[str, Any]:
    rec = reconcile(name)
    return {**rec, "config": records.read_config(name)}


def export(name: str) -> dict[str, Any]:
    records.read(name)
    return records.read_config(name)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def patch(name: str, changes: Any) -> dict[str, Any]:
    """Change the config of a VM that is not running (JSON merge patch, then re-validated)."""
    if not isinstance(changes, dict):
        raise QVError("QV_ERR_INVAL", "a patch is a JSON object (merge patch of the config)")
    with records.operation_lock(name):
        rec = reconcile(name)
        if rec["state"] in LIVE_STATES:
            raise _wrong_state(name, "change the config of", rec["state"])
        current = records.read_config(name)
        new = _merge_patch(current, changes)
        if new.get("name") != name:
            raise QVError("QV_ERR_INVAL", "the name of a VM cannot be changed", path="name")
        records.write_config(name, validate(new, allow_existing=True))
        return records.update(name)


def start(name: str, spawned: SpawnHook | None = None) -> dict[str, Any]:
    with records.operation_lock(name):
        rec = reconcile(name)
        if rec["state"] not in ("CREATED", "STOPPED", "CRASHED"):
            raise _wrong_state(name, "start", rec["state"])
        d = records.vm_dir(name)
        r, w = os.pipe2(os.O_CLOEXEC)
        logf = open(d / "runner.log", "ab")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "quantavirt.runner", name, "--ready-fd", str(w)],
                pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                start_new_session=True, close_fds=True)
        finally:
            logf.close()
            os.close(w)
        if spawned is not None:
            spawned(name, proc)
        try:
            reply = _read_ready(r, proc)
        finally:
            os.close(r)
        if "error" in reply:
            e = reply["error"]
            proc.wait(10)
            raise QVError(int(e["code"]), e.get("message"), path=e.get("path"),
                          detail=e.get("detail") or None)
        log("INFO", SUBSYSTEM, f"VM {name} started (runner pid {proc.pid})")
        return records.read(name)


def _read_ready(fd: int, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    data = b""
    deadline = time.monotonic() + START_TIMEOUT
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            raise QVError("QV_ERR_TIMEOUT", f"the VM process did not start within "
                          f"{START_TIMEOUT:.0f} s")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    try:
        return json.loads(data)  # type: ignore[no-any-return]
    except ValueError:
        code = proc.wait(10)
        raise QVError("QV_ERR_INTERNAL", f"the VM process exited ({code}) before it was ready; "
                      "see runner.log in the VM's directory") from None


def _wait_runner_gone(name: str, timeout: float,
                      runner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record once the VM left the live states and, given the record from before the
    stop (`runner`: its pid and start time), once that process has exited too."""
    deadline = time.monotonic() + timeout
    while True:
        rec = reconcile(name)
        if rec["state"] not in LIVE_STATES and (runner is None or not runner_alive(runner)):
            return rec
        if time.monotonic() > deadline:
            raise QVError("QV_ERR_TIMEOUT", f"VM {name}: its VM process did not end")
        time.sleep(0.05)


def stop(name: str, force: bool = False, timeout: float = 30.0) -> dict[str, Any]:
    """Graceful: the ACPI power button, QV_ERR_TIMEOUT when the guest does not power off
    within `timeout` seconds (the VM keeps running). Force: the VM is torn down now."""
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
        raise QVError("QV_ERR_INVAL", "timeout must be a number of seconds >= 0")
    with records.operation_lock(name):
        rec = reconcile(name)
        if rec["state"] not in LIVE_STATES:
            raise _wrong_state(name, "stop", rec["state"])
        control_request(name, {"op": "stop", "force": bool(force), "timeout": timeout},
                        timeout=timeout + 35)
        return _wait_runner_gone(name, 30, rec)


def _simple(name: str, op: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    with records.operation_lock(name):
        rec = reconcile(name)
        if rec["state"] not in allowed:
            raise _wrong_state(name, op, rec["state"])
        control_request(name, {"op": op})
        return records.read(name)


def pause(name: str) -> dict[str, Any]:
    return _simple(name, "pause", ("RUNNING",))


def resume(name: str) -> dict[str, Any]:
    return _simple(name, "resume", ("PAUSED",))


def reset(name: str) -> dict[str, Any]:
    return _simple(name, "reset", LIVE_STATES)


def stats(name: str) -> dict[str, Any]:
    rec = reconcile(name)
    if rec["state"] not in LIVE_STATES:
        raise _wrong_state(name, "read the statistics of", rec["state"])
    reply = control_request(name, {"op": "stats"}, timeout=10)
    reply.pop("ok", None)
    return reply


def destroy(name: str) -> dict[str, Any]:
    """Any state -> DESTROYED: the VM process is torn down, the VM and its name removed."""
    with records.operation_lock(name):
        rec = reconcile(name)
        if rec["state"] in LIVE_STATES and runner_alive(rec):
            try:
                control_request(name, {"op": "stop", "force": True}, timeout=35)
                _wait_runner_gone(name, 10, rec)
            except QVError:
                if runner_alive(rec):
                    os.kill(int(rec["pid"]), signal.SIGKILL)
        records.remove(name)
    log("INFO", SUBSYSTEM, f"VM {name} destroyed")
    return {**rec, "state": "DESTROYED", "pid": None, "pid_start": None,
            "updated_at": records.now()}
