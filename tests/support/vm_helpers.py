"""Shared by the pin/cgroup/memory tests: a config-driven VM running the smp_spin guest (every
vCPU busy until stopped), and per-thread facts from /proc."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quantavirt.vm import VM

# guest(name) -> the built guest (the `guest` fixture of conftest.py)
GuestFactory = Callable[[str], Any]


@contextmanager
def spinning_vm(guest: GuestFactory, config: dict[str, Any],
                log_path: str | None = None) -> Iterator[VM]:
    """Start the smp_spin guest under `config`; yield once every AP is up; stop and close."""
    g = guest("smp_spin")
    vm = VM(config, flat_binary=g.binary, flat_mode=g.mode, flat_load=g.load, log_path=log_path)
    try:
        count = config["cpu"]["count"]
        vm.machine.write_phys(0x7004, struct.pack("<I", count))
        vm.start()
        deadline = time.monotonic() + 60
        while vm.stats().results != [count - 1]:
            assert vm.wait(0) is None, vm.wait(0)
            assert time.monotonic() < deadline, "the APs did not come up"
            time.sleep(0.02)
        yield vm
        vm.stop()
    finally:
        vm.close()


def task_status(tid: int) -> dict[str, str]:
    text = Path(f"/proc/self/task/{tid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def task_stat(tid: int) -> list[str]:
    """Fields of /proc/self/task/TID/stat after the command name (index 0 = field 3)."""
    return Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()


def task_cpu(tid: int) -> int:
    """The host CPU the thread last ran on (stat field 39)."""
    return int(task_stat(tid)[36])


def task_cpu_seconds(tid: int) -> float:
    """User + system CPU time of the thread (stat fields 14 and 15)."""
    import os

    st = task_stat(tid)
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


def parse_cpu_list(text: str) -> set[int]:
    """"0-2,5" -> {0, 1, 2, 5}."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    return out
