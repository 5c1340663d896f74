"""Run a VM while collecting its console until a condition on the output holds, for the tests
that boot Linux (each boot takes minutes on an emulating backend: one run checks many things).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def run_until(vm: Any, done: Callable[[bytes], bool], timeout: float) -> tuple[bytearray, float]:
    """Start `vm` (a quantavirt.VM), read its console until `done(output)` holds, the guest
    ends or `timeout` seconds pass; stop it if it still runs. (console output, wall seconds)"""
    out = bytearray()
    t0 = time.monotonic()
    vm.start()
    while vm.wait(0.5) is None:
        while chunk := vm.console.read(0):
            out += chunk
        if done(bytes(out)) or time.monotonic() - t0 > timeout:
            break
    if vm.state == "RUNNING":
        vm.stop()
    while chunk := vm.console.read(0.2):
        out += chunk
    return out, time.monotonic() - t0
