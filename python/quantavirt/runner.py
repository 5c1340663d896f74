"""The runner: one process per VM (``python -m quantavirt.runner NAME``), started by `vm start`
(the daemon or the local CLI) in its own session, so a VM that crashes takes nothing else down.

It builds the VM from the effective config in the state directory, starts it, keeps its record
up to date (RUNNING / PAUSED / STOPPED, pid, timestamps, how it ended) and answers requests on
its control socket ``vms/NAME/control.sock``: one JSON object per line in, one per line out
(``{"op": "stop", "force": false, "timeout": 30}`` -> ``{"ok": true, ...}`` or
``{"error": {code, name, message, ...}}``). Operations: ping, stats, pause, resume, stop, reset,
balloon. A guest reset (reboot) or a `reset` request rebuilds the VM from its config and runs
on. When the VM ends (guest power-off, stop, a guest or engine failure) the runner writes the
final record and exits.

Readiness: with ``--ready-fd N`` the runner writes one JSON line to that fd once the VM runs
(``{"ok": true}``) or failed to start (``{"error": {...}}``), then closes it.

Test hook (internal, not part of the config schema): when $QUANTAVIRT_TEST_GUESTS names a
directory holding ``<VM name>.bin``, that flat binary is booted in 64-bit mode at 1 MiB
instead of a kernel (the freestanding guests of tests/lifecycle/guests), and the bytes of
``<VM name>.params``, when present, are written at guest physical 0x7000 (the freestanding
guests read their mode there). Nothing else reads this variable; production configs boot
boot.kernel.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

from quantavirt import records
from quantavirt.errors import QVError
from quantavirt.logs import log, set_level
from quantavirt.vm import VM

TEST_GUESTS_ENV = "QUANTAVIRT_TEST_GUESTS"
TEST_GUEST_LOAD = 0x100000
TEST_GUEST_PARAMS = 0x7000
MAX_TEST_PARAMS = 0x1000
PM1_PWRBTN = 1 << 8  # PWRBTN_STS in PM1 status, PWRBTN_EN in PM1 enable
SUBSYSTEM = "lifecycle"
MAX_REQUEST = 65536
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or None
    when no such (living, non-zombie) process exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def thread_cpu_seconds(pid: int, tid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_guest(name: str) -> tuple[bytes, bytes] | None:
    """The test hook's flat binary and its parameter bytes (b"" without a .params file)."""
    d = os.environ.get(TEST_GUESTS_ENV)
    if not d:
        return None
    path = Path(d) / f"{name}.bin"
    if not path.is_file():
        return None
    params = path.with_suffix(".params")
    data = params.read_bytes() if params.is_file() else b""
    if len(data) > MAX_TEST_PARAMS:
        raise QVError("QV_ERR_INVAL", f"{params}: more than {MAX_TEST_PARAMS} bytes")
    return path.read_bytes(), data


def _sum(items: list[dict[str, Any]], key: str) -> int:
    return sum(int(d.get(key, 0)) for d in items)


def disk_totals(disks: list[dict[str, Any]]) -> dict[str, Any]:
    """The stats' `disk` section from the engine's per-device virtio-blk counters."""
    devices = [{"storage": d["storage"], "path": d["path"], "readonly": d["readonly"],
                "read_bytes": d["rd_bytes"], "write_bytes": d["wr_bytes"],
                "read_ops": d["rd_ops"], "write_ops": d["wr_ops"],
                "flush_ops": d["flush_ops"], "discard_ops": d["discard_ops"],
                "write_zeroes_ops": d["write_zeroes_ops"], "io_errors": d["io_errors"],
                "throttled": d["throttled"]} for d in disks]
    keys = ("read_bytes", "write_bytes", "read_ops", "write_ops", "flush_ops", "discard_ops",
            "write_zeroes_ops", "io_errors", "throttled")
    return {**{k: _sum(devices, k) for k in keys}, "devices": devices}


class Runner:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = records.vm_dir(name)
        self.config = records.read_config(name)
        self.lock = threading.RLock()
        self.ended = threading.Event()
        self.reset_requested = False
        self.stop_requested = False
        self.resets = 0
        self.power_button_presses = 0
        self.vm = self._build()

    def _build(self) -> VM:
        hook = test_guest(self.name)
        flat, params = hook if hook is not None else (None, b"")
        if flat is not None:
            log("INFO", SUBSYSTEM, f"VM {self.name}: test hook boots a flat test guest "
                f"({len(flat)} bytes, {len(params)} parameter bytes)")
        vm = VM(self.config, log_path=str(self.dir / "vm.log"), flat_binary=flat,
                flat_mode="long", flat_load=TEST_GUEST_LOAD)
        if params:
            try:
                vm.machine.write_phys(TEST_GUEST_PARAMS, params)
            except BaseException:
                vm.close()
                raise
        return vm

    # -- control operations (called from the control socket's threads) --------------------
    def op_ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "state": self.vm.state}

    def op_pause(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.vm.pause()
            records.update(self.name, state="PAUSED")
        log("INFO", SUBSYSTEM, f"VM {self.name} paused")
        return {"state": "PAUSED"}

    def op_resume(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.vm.resume()
            records.update(self.name, state="RUNNING")
        log("INFO", SUBSYSTEM, f"VM {self.name} resumed")
        return {"state": "RUNNING"}

    def op_reset(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if self.vm.state not in ("RUNNING", "PAUSED"):
                raise QVError("QV_ERR_STATE", f"cannot reset a VM in state {self.vm.state}")
            self.reset_requested = True
            self.vm.machine.stop()
            before = self.resets
        deadline = time.monotonic() + 30
        while self.resets == before and not self.ended.is_set():
            if time.monotonic() > deadline:
                raise QVError("QV_ERR_TIMEOUT", "the VM did not restart within 30 s")
            time.sleep(0.02)
        if self.ended.is_set():
            raise QVError("QV_ERR_INTERNAL", "the VM could not be restarted after the reset")
        return {"state": "RUNNING", "resets": self.resets}

    def op_stop(self, req: dict[str, Any]) -> dict[str, Any]:
        force = bool(req.get("force", False))
        timeout = req.get("timeout", 30)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
            raise QVError("QV_ERR_INVAL", "timeout must be a number of seconds >= 0")
        with self.lock:
            st = self.vm.state
            if force:
                if st not in ("RUNNING", "PAUSED"):
                    raise QVError("QV_ERR_STATE", f"cannot stop a VM in state {st}")
                self.stop_requested = True
                self.vm.machine.stop()
            else:
                if st != "RUNNING":
                    raise QVError("QV_ERR_STATE", f"cannot stop a VM in state {st} gracefully"
                                  + (" (resume it or use force)" if st == "PAUSED" else ""))
                self.vm.power_button()
                self.power_button_presses += 1
        log("INFO", SUBSYSTEM, f"VM {self.name}: {'forced stop' if force else 'power button'}")
        if not self.ended.wait(float(timeout) if not force else 30.0):
            raise QVError("QV_ERR_TIMEOUT", f"the guest did not power off within {timeout} s "
                          "after the ACPI power button; use force to stop it",
                          detail=self._button_diagnosis())
        return {"state": "STOPPED"}

    def _button_diagnosis(self) -> str:
        """What the guest did with the power button, for a graceful stop that timed out."""
        try:
            with self.lock:
                sts, en = self.vm.machine.pm1_state()
        except QVError:
            return ""
        if not en & PM1_PWRBTN:
            return ("the guest has not enabled the ACPI power button (PWRBTN_EN clear): no "
                    "ACPI operating system is running yet, or it ignores the button")
        if sts & PM1_PWRBTN:
            return "the guest enabled the power button but has not taken the event yet"
        return ("the guest took the power-button event (PWRBTN_STS cleared) but did not power "
                "off: nothing in it (acpid, logind, init) acts on the button")

    def op_stats(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            st = self.vm.stats()
            tids = self.vm.vcpu_tids()
            vm_state = self.vm.state
            pm1_sts, pm1_en = self.vm.machine.pm1_state()
            balloon = self.vm.balloon_info() if self.vm.devices.balloon else None
        pid = os.getpid()
        vcpus = [{"index": i, "tid": tid,
                  "cpu_seconds": (thread_cpu_seconds(pid, tid) if tid else None) or 0.0}
                 for i, tid in enumerate(tids)]
        t = os.times()
        return {
            "name": self.name, "state": vm_state, "pid": pid,
            "vcpus": vcpus,
            "process": {"rss_bytes": rss_bytes(), "cpu_seconds": t.user + t.system},
            "exits": {"total": st.exits_total, "by_reason": st.exits_by_reason,
                      "pio": st.pio_exits, "mmio": st.mmio_exits,
                      "completed_instructions": st.completed_insns},
            "console": {"bytes": st.console_bytes, "dropped": st.console_dropped},
            "disk": disk_totals(st.disks),
            "network": {"rx_bytes": 0, "tx_bytes": 0, "rx_packets": 0, "tx_packets": 0,
                        "devices": [],
                        "note": "no network device: the engine has no virtio-net yet, "
                                "so these counters are 0"},
            "acpi": {"pm1_status": pm1_sts, "pm1_enable": pm1_en,
                     "power_button": {
                         "presses": self.power_button_presses,
                         # the guest's ACPI code enabled the fixed power button event
                         "enabled": bool(pm1_en & PM1_PWRBTN),
                         # a press the guest has not taken yet (it clears the status bit)
                         "pending": bool(pm1_sts & PM1_PWRBTN)}},
            "balloon": balloon,
            "resets": self.resets,
        }

    def op_balloon(self, req: dict[str, Any]) -> dict[str, Any]:
        """``{"op": "balloon", "target_bytes": N}``: the balloon's new target (0 deflates);
        without a target only its state. QV_ERR_NODEV unless memory.balloon is set."""
        target = req.get("target_bytes")
        with self.lock:
            if self.vm.state not in ("RUNNING", "PAUSED"):
                raise QVError("QV_ERR_STATE", f"no balloon in state {self.vm.state}")
            if not self.vm.devices.balloon:
                raise QVError("QV_ERR_NODEV", "this VM has no balloon (memory.balloon)")
            if target is not None:
                if not isinstance(target, int) or isinstance(target, bool) or target < 0:
                    raise QVError("QV_ERR_INVAL", "target_bytes must be an integer >= 0")
                if target > self.vm.machine.memory:
                    raise QVError("QV_ERR_INVAL", "target_bytes is larger than guest RAM")
                self.vm.balloon(target)
            return {"balloon": self.vm.balloon_info()}

    def handle(self, req: Any) -> dict[str, Any]:
        try:
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise QVError("QV_ERR_INVAL", 'a request is a JSON object with "op"')
            fn = getattr(self, f"op_{req['op']}", None)
            if fn is None:
                raise QVError("QV_ERR_INVAL", f"unknown operation {req['op']!r}")
            return {"ok": True, **fn(req)}
        except QVError as e:
            return {"error": e.to_dict()}

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> int:
        """Run until the VM ends for good; the exit status of the runner process."""
        while True:
            ex = self.vm.wait(0.2)
            if ex is None:
                continue
            with self.lock:
                reboot = (self.reset_requested or ex.reason == "reset") \
                    and not self.stop_requested
                if reboot:
                    why = "reset requested" if self.reset_requested else "guest reset"
                    log("INFO", SUBSYSTEM, f"VM {self.name}: {why}; restarting it")
                    self.vm.close()
                    self.reset_requested = False
                    try:
                        self.vm = self._build()
                        self.vm.start()
                    except QVError as e:
                        self._finish("STOPPED", {"reason": "error"}, e)
                        return 1
                    self.resets += 1
                    records.update(self.name, state="RUNNING")
                    continue
                error = ex.error
                exit_info = {"reason": ex.reason, "status": ex.status}
                self._finish("STOPPED", exit_info, error)
                return 0 if error is None else 1

    def _finish(self, st: str, exit_info: dict[str, Any], error: QVError | None) -> None:
        if error is not None:
            log("ERROR", SUBSYSTEM, f"VM {self.name}: {error.name}: {error.message}")
        # Release everything first (guest RAM, the disk images and their locks): once the
        # record says STOPPED, the images may be opened by others (qemu-img, a new start).
        try:
            self.vm.close()
        except QVError as e:
            log("ERROR", SUBSYSTEM, f"VM {self.name}: closing it: {e.name}: {e.message}")
        records.update(self.name, state=st, pid=None, pid_start=None, stopped_at=records.now(),
                       last_exit=exit_info, last_error=error.to_dict() if error else None)
        self.ended.set()
        with contextlib.suppress(OSError):
            (self.dir / "control.sock").unlink()


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST)
        try:
            req = json.loads(line)
        except ValueError:
            req = None
        with self.server.in_flight:
            self.server.active += 1
        try:
            reply = self.server.runner.handle(req)
            self.wfile.write((json.dumps(reply) + "\n").encode())
        finally:
            with self.server.in_flight:
                self.server.active -= 1
                self.server.in_flight.notify_all()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    runner: Runner
    active = 0                              # requests being answered
    in_flight = threading.Condition()

    def drain(self, timeout: float = 5.0) -> None:
        """Let the requests being answered (a stop waiting for the end) send their replies
        before the process exits."""
        with self.in_flight:
            self.in_flight.wait_for(lambda: self.active == 0, timeout)


def control_path(name: str) -> Path:
    return records.vm_dir(name) / "control.sock"


def control_request(name: str, req: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Send one request to a VM's runner; its reply. QVError on an error reply; QV_ERR_STATE
    when no runner answers."""
    path = control_path(name)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except OSError:
            raise QVError("QV_ERR_STATE", f"VM {name} has no running VM process") from None
        s.sendall((json.dumps(req) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                raise QVError("QV_ERR_TIMEOUT", f"VM {name}: no answer from its VM process "
                              f"within {timeout} s") from None
            if not chunk:
                break
            data += chunk
    try:
        reply = json.loads(data)
    except ValueError:
        raise QVError("QV_ERR_STATE", f"VM {name}: its VM process ended during the request"
                      ) from None
    if "error" in reply:
        e = reply["error"]
        raise QVError(int(e["code"]), e.get("message"), detail=e.get("detail") or None)
    return reply  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantavirt.runner")
    parser.add_argument("name")
    parser.add_argument("--ready-fd", type=int, default=-1)
    args = parser.parse_args(argv)
    set_level("INFO")
    ready = os.fdopen(args.ready_fd, "w") if args.ready_fd >= 0 else None

    def say(value: dict[str, Any]) -> None:
        nonlocal ready
        if ready is not None:
            with contextlib.suppress(OSError):
                ready.write(json.dumps(value) + "\n")
                ready.close()
            ready = None

    def on_term(_sig: int, _frame: object) -> None:
        # Once the VM runs, SIGTERM is a forced stop the main loop finishes cleanly (wherever
        # the signal lands: also between the readiness reply and the loop); before, it
        # interrupts the start.
        if runner is not None and runner.vm.state in ("RUNNING", "PAUSED"):
            runner.stop_requested = True
            runner.vm.machine.stop()
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    server: _Server | None = None
    runner: Runner | None = None
    try:
        runner = Runner(args.name)
        sock = control_path(args.name)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        old_umask = os.umask(0o177)  # the control socket is created 0600
        try:
            server = _Server(str(sock), _Handler)
        finally:
            os.umask(old_umask)
        server.runner = runner
        runner.vm.start()
        records.update(args.name, state="RUNNING", pid=os.getpid(),
                       pid_start=proc_start_time(os.getpid()), started_at=records.now(),
                       last_error=None, last_exit=None)
    except (QVError, OSError) as exc:
        e = exc if isinstance(exc, QVError) else QVError("QV_ERR_IO", str(exc))
        log("ERROR", SUBSYSTEM, f"VM {args.name}: {e.name}: {e.message}")
        with contextlib.suppress(QVError, OSError):
            records.update(args.name, last_error=e.to_dict())
        if server is not None:
            server.server_close()
            with contextlib.suppress(OSError):
                control_path(args.name).unlink()
        if runner is not None:
            runner.vm.close()
        say({"error": e.to_dict()})
        return 1
    threading.Thread(target=server.serve_forever, name="qv-control", daemon=True).start()
    log("INFO", SUBSYSTEM, f"VM {args.name} running (pid {os.getpid()})")
    say({"ok": True, "pid": os.getpid()})
    try:
        return runner.run()
    except KeyboardInterrupt:
        with runner.lock:
            runner.stop_requested = True
            runner.vm.machine.stop()
        return runner.run()
    finally:
        server.drain()
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
