"""`quantavirt launch vm.json`: create a VM, start it and attach the serial console.

On a terminal the console is attached in raw mode; the escape key is Ctrl-] followed by
``q`` (stop the VM), ``d`` (detach: the terminal returns to normal mode and stops showing
the console, the VM runs on until it ends; Ctrl-C then stops it) or Ctrl-] again (send a
literal Ctrl-]). When stdout is not a terminal
the console is streamed to stdout and the command ends with the guest.

Exit status (scripts depend on it):
  0    the guest powered off (or the launch was stopped with Ctrl-] q)
  1    a QuantaVirt error, printed on stderr as ``Error: NAME (code): message`` -- a triple
       fault or an instruction the VMM cannot complete (QV_ERR_GUEST, with a register dump),
       --timeout expiring (QV_ERR_TIMEOUT), bad configuration, no KVM (QV_ERR_NOVMX), ...
  3    the guest reset itself (reboot, or a panic with panic=-1)
  N    a test guest wrote N to the debug-exit port (0xf4): N for 0..125, 125 above
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import time
import tty
from pathlib import Path
from typing import Any

from quantavirt.errors import QVError

ESCAPE = b"\x1d"  # Ctrl-]
EXIT_RESET = 3
EXIT_DEBUG_MAX = 125


def _load_config(path: str) -> dict[str, Any]:
    """The effective configuration of the file (validation errors raise the QV error)."""
    from quantavirt.config import load_file

    return load_file(path)


def _exit_code(vm: Any) -> int:
    ex = vm.wait()
    if ex.reason == "error":
        assert ex.error is not None
        raise ex.error
    if ex.reason == "reset":
        print("quantavirt: the guest reset (reboot)", file=sys.stderr)
        return EXIT_RESET
    if ex.reason == "debug-exit":
        return min(max(int(ex.status or 0), 0), EXIT_DEBUG_MAX)
    return 0


def _stream(vm: Any, deadline: float | None) -> bool:
    """Copy the console to stdout until the VM ends. False when the deadline passed."""
    out = sys.stdout.buffer
    while True:
        if deadline is not None and time.monotonic() > deadline:
            return False
        chunk = vm.console.read(timeout=0.1)
        if chunk:
            out.write(chunk)
            out.flush()
        elif vm.console.at_end:
            return True
        elif vm.wait(0) is not None and vm.console.at_end:
            return True


def _wait_detached(vm: Any, deadline: float | None) -> bool:
    """Detached: keep draining (and dropping) the console until the VM ends."""
    while not vm.console.at_end:
        if deadline is not None and time.monotonic() > deadline:
            return False
        vm.console.read(timeout=0.1)
    return True


def _attach_tty(vm: Any, deadline: float | None) -> bool:
    """Raw-mode console on the terminal with the Ctrl-] escape. False on deadline."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    out = sys.stdout.buffer
    escape = False
    print("quantavirt: console attached; Ctrl-] q stops the VM, Ctrl-] d detaches\r",
          file=sys.stderr)
    tty.setraw(fd)
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                return False
            chunk = vm.console.read(timeout=0.02)
            if chunk:
                out.write(chunk)
                out.flush()
            if vm.console.at_end:
                return True
            r, _, _ = select.select([fd], [], [], 0)
            if not r:
                continue
            data = os.read(fd, 1024)
            for b in data:
                c = bytes([b])
                if escape:
                    escape = False
                    if c in (b"q", b"Q"):
                        vm.stop()
                        return True
                    if c in (b"d", b"D"):
                        # Back to the normal terminal mode, so Ctrl-C works again.
                        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
                        print("\r\nquantavirt: console detached; the VM runs until it ends "
                              "(Ctrl-C stops it)", file=sys.stderr)
                        return _wait_detached(vm, deadline)
                    if c != ESCAPE:
                        continue
                elif c == ESCAPE:
                    escape = True
                    continue
                vm.console_input(c)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _launch(args: argparse.Namespace) -> int:
    from quantavirt.vm import VM

    config = _load_config(args.config)
    flat = None
    if args.flat:
        try:
            flat = Path(args.flat).read_bytes()
        except OSError as e:
            raise QVError("QV_ERR_NOENT", f"{args.flat}: {e.strerror}") from None
    vm = VM(config, log_path=args.log, flat_binary=flat, flat_mode=args.flat_mode,
            flat_load=int(args.flat_load, 0))
    try:
        vm.start()
        deadline = time.monotonic() + args.timeout if args.timeout else None
        try:
            interactive = sys.stdout.isatty() and sys.stdin.isatty()
            finished = _attach_tty(vm, deadline) if interactive else _stream(vm, deadline)
        except KeyboardInterrupt:
            if vm.state == "RUNNING":
                vm.stop()
            raise
        if not finished:
            vm.machine.stop()
            vm.wait()
            raise QVError("QV_ERR_TIMEOUT",
                          f"the guest was still running after {args.timeout:g} s; stopped")
        return _exit_code(vm)
    finally:
        vm.close()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "launch", help="create, start and attach the console of a VM in one step",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="VM configuration (JSON)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="stop the guest with QV_ERR_TIMEOUT if it runs longer")
    p.add_argument("--log", default=None, metavar="FILE", help="VM log (register dumps, ...)")
    p.add_argument("--flat", default=None, metavar="BINARY",
                   help="diagnostics: run a freestanding flat binary instead of boot.kernel")
    p.add_argument("--flat-mode", default="long", choices=("real", "prot32", "long"),
                   help="entry mode of --flat (default long)")
    p.add_argument("--flat-load", default="0x100000", metavar="ADDR",
                   help="load and entry address of --flat (default 0x100000)")
    p.set_defaults(handler=_launch)
