"""Cost of one instruction completed by the fallback (emulation-failure exit, decode, register
round trip, KVM_RUN again): a guest executes N `popcnt %rax,%rbx` in a loop. On hardware KVM
nothing is completed and the figure is the native loop cost. Run with
``.venv/bin/python -m pytest benchmarks/bench_fallback.py --benchmark-only -s``."""

from __future__ import annotations

import os
import struct
import time

import pytest

from quantavirt.engine import run_flat

pytestmark = pytest.mark.kvm

N = 5000


def _guest(n: int, popcnt: bool) -> bytes:
    body = b"\xf3\x48\x0f\xb8\xd8" if popcnt else b"\x90" * 5  # popcnt %rax,%rbx | 5 nops
    # mov $n,%ecx; 1: body; dec %ecx; jnz 1b; out %al,$0xf4; hlt
    jump = (-(len(body) + 4)) & 0xFF
    return (b"\xb9" + struct.pack("<I", n) + body + b"\xff\xc9\x75" + bytes([jump])
            + b"\xe6\xf4\xf4")


def _run(n: int, popcnt: bool) -> tuple[float, int]:
    t = time.perf_counter()
    r = run_flat(_guest(n, popcnt), 0x100000, "long", timeout=300)
    elapsed = time.perf_counter() - t
    assert r.exit.reason == "debug-exit", r.exit
    return elapsed, r.stats.completed_insns


@pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm")
def test_completed_instruction_cost(benchmark):
    base = min(_run(N, False)[0] for _ in range(3))
    completed: list[int] = []

    def run() -> float:
        elapsed, n = _run(N, True)
        completed.append(n)
        return elapsed

    benchmark.pedantic(run, rounds=3, iterations=1)
    per_insn_us = (benchmark.stats.stats.min - base) / N * 1e6
    benchmark.extra_info["us_per_completed_popcnt"] = round(per_insn_us, 2)
    benchmark.extra_info["completed"] = completed[-1]
    print(f"\npopcnt through the completion fallback: {per_insn_us:.2f} us each "
          f"({completed[-1]} completed of {N})")
    assert completed[-1] in (0, N)
