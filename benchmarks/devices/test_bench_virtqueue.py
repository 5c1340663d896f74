"""virtio fast-path throughput: benchmarks/c/bench_virtqueue.c built in Release (no
sanitizers) and run under pytest-benchmark. The C program reports requests/s for 4 KiB
virtio-blk reads (transport + virtqueue + device + in-memory disk) and for the bare
virtqueue pop+push; both land in the benchmark's extra_info.

Run: .venv/bin/python -m pytest benchmarks/devices -q
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from c_bench import c_bench_binary

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 500_000


@pytest.fixture(scope="module")
def bench_binary() -> Path:
    return c_bench_binary("bench_virtqueue")


def _run(binary: Path) -> dict[str, float]:
    out = subprocess.run([str(binary), str(REQUESTS)], capture_output=True, text=True,
                         check=True).stdout
    blk = re.search(r"virtio-blk 4K reads.*: (\d+) requests/s", out)
    ring = re.search(r"virtqueue pop\+push.*: (\d+) requests/s", out)
    assert blk and ring, out
    return {"blk_4k_read_requests_per_s": float(blk.group(1)),
            "virtqueue_requests_per_s": float(ring.group(1))}


def test_virtqueue_fast_path(benchmark, bench_binary: Path) -> None:
    results: list[dict[str, float]] = []
    benchmark.pedantic(lambda: results.append(_run(bench_binary)), rounds=3, iterations=1)
    best = {k: max(r[k] for r in results) for k in results[0]}
    benchmark.extra_info.update(best)
    # the fast path must stay far above what any real disk does (1M IOPS)
    assert best["blk_4k_read_requests_per_s"] > 1_000_000
