"""The lifecycle verbs of ``quantavirt vm``: create, start, stop, pause, resume, reset, destroy,
list, show, export, stats. They go through the daemon when one answers on its socket, else
they work on the state directory directly (quantavirt.lifecycle). Read commands take --json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from quantavirt.api.client import lifecycle_backend
from quantavirt.config.loader import read_config
from quantavirt.errors import QVError
from quantavirt.records import atomic_write


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _brief(rec: dict[str, Any]) -> str:
    extra = f" (pid {rec['pid']})" if rec.get("pid") else ""
    err = rec.get("last_error")
    if err and rec.get("state") in ("CRASHED", "STOPPED"):
        extra += f"; last error: {err.get('name')}: {err.get('message')}"
    return f"VM {rec['name']}: {rec['state']}{extra}"


def _create(args: argparse.Namespace) -> int:
    rec = lifecycle_backend().create(read_config(args.config))
    _print(rec) if args.json else print(_brief(rec))
    return 0


def _action(op: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        backend = lifecycle_backend()
        if op == "stop":
            rec = backend.stop(args.name, force=args.force, timeout=args.timeout)
        else:
            rec = getattr(backend, op)(args.name)
        _print(rec) if args.json else print(_brief(rec))
        return 0
    return run


def _list(args: argparse.Namespace) -> int:
    vms = lifecycle_backend().list_vms()
    if args.json:
        _print({"vms": vms})
        return 0
    print(f"{'NAME':<24} {'STATE':<10} {'PID':>8}  UPDATED")
    for r in vms:
        print(f"{r['name']:<24} {r['state']:<10} {r.get('pid') or '-':>8}  "
              f"{r.get('updated_at', '')}")
    return 0


def _show(args: argparse.Namespace) -> int:
    info = lifecycle_backend().show(args.name)
    if args.json:
        _print(info)
        return 0
    for key in ("name", "uuid", "state", "pid", "created_at", "started_at", "stopped_at",
                "updated_at", "last_exit", "last_error"):
        value = info.get(key)
        if isinstance(value, dict):
            value = json.dumps(value)
        print(f"{key + ':':<12} {value if value is not None else '-'}")
    cfg = info.get("config", {})
    print(f"{'config:':<12} {cfg.get('cpu', {}).get('count')} vCPUs, "
          f"{cfg.get('memory', {}).get('size')} RAM, {len(cfg.get('storage', []))} disk(s)")
    return 0


def _export(args: argparse.Namespace) -> int:
    cfg = lifecycle_backend().export(args.name)
    try:
        atomic_write(Path(args.output), (json.dumps(cfg, indent=2) + "\n").encode())
    except OSError as e:
        raise QVError("QV_ERR_IO", f"{args.output}: {e.strerror}") from None
    print(f"VM {args.name}: effective config written to {args.output}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    st = lifecycle_backend().stats(args.name)
    if args.json:
        _print(st)
        return 0
    print(f"VM {st['name']}: {st['state']}, pid {st['pid']}, "
          f"RSS {st['process']['rss_bytes'] / 1048576:.1f} MiB, "
          f"process CPU {st['process']['cpu_seconds']:.2f} s")
    for v in st["vcpus"]:
        print(f"  vCPU {v['index']}: {v['cpu_seconds']:.2f} s CPU (tid {v['tid']})")
    ex = st["exits"]
    reasons = ", ".join(f"{k} {n}" for k, n in sorted(ex["by_reason"].items())) or "none"
    print(f"  exits: {ex['total']} ({reasons}); completed instructions "
          f"{ex['completed_instructions']}")
    d, n = st["disk"], st["network"]
    print(f"  disk: {_io(d)}")
    for dev in d.get("devices", []):
        print(f"    storage[{dev['storage']}] {dev['path']}: {_io(dev)}"
              + (f", {dev['io_errors']} I/O errors" if dev["io_errors"] else ""))
    print(f"  network: {n['rx_bytes']} B in ({n['rx_packets']} packets), {n['tx_bytes']} B "
          f"out ({n['tx_packets']} packets)" + (f" ({n['note']})" if n.get("note") else ""))
    button = st.get("acpi", {}).get("power_button")
    if button:
        print(f"  power button: pressed {button['presses']} time(s); the guest "
              f"{'enabled' if button['enabled'] else 'did not enable'} it"
              + ("; a press is pending" if button["pending"] else ""))
    console = st.get("console")
    if console:
        print(f"  console: {console['bytes']} B out, {console['dropped']} B dropped")
    return 0


def _io(d: dict[str, Any]) -> str:
    return (f"{d['read_bytes']} B read in {d['read_ops']} ops, {d['write_bytes']} B written "
            f"in {d['write_ops']} ops, {d['flush_ops']} flushes")


def add_lifecycle(actions: Any) -> None:
    def named(verb: str, help_: str, handler: Any, json_flag: bool = True) -> Any:
        p = actions.add_parser(verb, help=help_, description=help_)
        p.add_argument("name", metavar="NAME")
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=handler)
        return p

    p = actions.add_parser("create", help="validate a config and create the VM (CREATED)")
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(handler=_create)
    named("start", "start a VM in its own process (-> RUNNING)", _action("start"))
    p = named("stop", "stop a VM: the ACPI power button, or at once with --force",
              _action("stop"))
    p.add_argument("--force", action="store_true", help="tear the VM down now")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="seconds the guest has to power off (default 30), else "
                        "QV_ERR_TIMEOUT")
    named("pause", "pause a running VM (its vCPUs stop)", _action("pause"))
    named("resume", "resume a paused VM", _action("resume"))
    named("reset", "reset a VM (restart from its config)", _action("reset"))
    named("destroy", "destroy a VM in any state and free its name", _action("destroy"))
    p = actions.add_parser("list", help="list VMs and their states")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_list)
    named("show", "a VM's record and config", _show)
    named("stats", "CPU time per vCPU, exits, RSS, disk and network I/O", _stats)
    p = actions.add_parser("export", help="write a VM's effective config to a file")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--output", required=True, metavar="FILE")
    p.set_defaults(handler=_export)
