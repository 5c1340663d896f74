"""Cost of one port-I/O exit round trip (guest OUT -> KVM_EXIT_IO -> device bus -> KVM_RUN).

A freestanding 64-bit guest executes N `out %al, $0x80` in a loop, then leaves through the
debug-exit port. The same loop with the OUT replaced by two NOPs measures the guest-side loop
cost; the difference per iteration is the exit round trip. Run with
``.venv/bin/python -m pytest benchmarks/bench_pio_exit.py --benchmark-only -s``
(the numbers are printed and stored in the benchmark's extra_info)."""

from __future__ import annotations

import os
import struct
import time

import pytest

from quantavirt.engine import run_flat

pytestmark = pytest.mark.kvm

N = 20000


def _guest(n: int, with_out: bool) -> bytes:
    body = b"\xe6\x80" if with_out else b"\x90\x90"  # out %al,$0x80 | nop; nop
    # mov $n,%ecx; 1: body; dec %ecx; jnz 1b; out %al,$0xf4; hlt
    return b"\xb9" + struct.pack("<I", n) + body + b"\xff\xc9\x75\xfa" + b"\xe6\xf4\xf4"


def _run(n: int, with_out: bool) -> float:
    t = time.perf_counter()
    r = run_flat(_guest(n, with_out), 0x100000, "long", timeout=300)
    elapsed = time.perf_counter() - t
    assert r.exit.reason == "debug-exit"
    if with_out:
        assert r.stats.pio_exits == n + 1
    return elapsed


@pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm")
def test_pio_exit_round_trip(benchmark):
    base = min(_run(1, True) for _ in range(3))          # VM create/start/teardown
    loop = min(_run(N, False) for _ in range(3)) - base   # N - 1 more iterations, no exits

    def exits() -> float:
        return _run(N, True)

    benchmark.pedantic(exits, rounds=5, iterations=1)
    per_iter = (benchmark.stats.stats.min - base) / (N - 1)
    per_exit_us = (per_iter - loop / (N - 1)) * 1e6
    benchmark.extra_info["us_per_pio_exit"] = round(per_exit_us, 2)
    benchmark.extra_info["us_per_iteration_with_exit"] = round(per_iter * 1e6, 2)
    loop_us = loop / (N - 1) * 1e6
    benchmark.extra_info["us_per_loop_iteration_without_exit"] = round(loop_us, 3)
    print(f"\nport-I/O exit round trip: {per_exit_us:.2f} us "
          f"(loop with OUT {per_iter * 1e6:.2f} us/iter, without {loop_us:.3f} us/iter)")
    assert per_exit_us > 0
