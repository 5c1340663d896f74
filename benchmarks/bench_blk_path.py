"""The virtio-blk block path side by side with QEMU's block layer on the same images.

Ours: benchmarks/c/bench_blk_path.c (Release build): a C driver keeps 64 requests in flight
through the real virtio-pci transport, virtqueue and virtio-blk device onto the image opened
by qv_disk_open, as the engine's I/O thread runs them (no KVM exits counted), in three io
setups: "inline" (requests run inside process_queue, the old path), "threads" (worker pool)
on the page cache, and "native" (io_uring) with cache none (O_DIRECT).
QEMU: `qemu-img bench` (QEMU's own block layer, 64 requests in flight) on the same file with
the matching setup: `-t writeback -i threads` for inline/threads, `-t none -i native` for
native. `qemu-img bench` has no random mode, so the random workloads have no QEMU figure.
qcow2 overhead = qcow2 time / raw time.

Run: .venv/bin/python -m pytest benchmarks/bench_blk_path.py -q -s
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from c_bench import c_bench_binary

ROOT = Path(__file__).resolve().parents[1]
IMAGE_BYTES = 256 << 20
TOTAL = {4096: 64 << 20, 1 << 20: 256 << 20}
WORKLOADS = [("seqread", 4096), ("seqwrite", 4096), ("randread", 4096), ("randwrite", 4096),
             ("seqread", 1 << 20), ("seqwrite", 1 << 20)]
# (our io mode, cache mode, qemu-img bench -t / -i)
IO_SETUPS = {"inline": ("writeback", "writeback", "threads"),
             "threads": ("writeback", "writeback", "threads"),
             "native": ("none", "none", "native")}
ROUNDS = 3
RESULTS: dict[tuple[str, str, str, int], dict[str, float]] = {}


@pytest.fixture(scope="module")
def bench_binary() -> Path:
    return c_bench_binary("bench_blk_path")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not shutil.which("qemu-img"):
        pytest.skip("qemu-img (qemu-utils) not installed")
    d = tmp_path_factory.mktemp("blkbench")
    raw = d / "img.raw"
    with open(raw, "wb") as f:  # fully allocated: no allocation cost in either format
        for _ in range(IMAGE_BYTES >> 20):
            f.write(os.urandom(1 << 20))
    qcow2 = d / "img.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    return {"raw": raw, "qcow2": qcow2}


def ours(binary: Path, image: Path, fmt: str, workload: str, bs: int, io: str) -> float:
    cache = IO_SETUPS[io][0]
    out = subprocess.run([str(binary), str(image), fmt, workload, str(bs), str(TOTAL[bs]), io,
                          cache], capture_output=True, text=True, check=True).stdout
    m = re.search(r": ([\d.]+) MB/s", out)
    assert m, out
    return float(m.group(1))


def qemu(image: Path, fmt: str, workload: str, bs: int, io: str) -> float | None:
    if not workload.startswith("seq"):
        return None
    count = TOTAL[bs] // bs
    _, cache, aio = IO_SETUPS[io]
    cmd = ["qemu-img", "bench", "-f", fmt, "-t", cache, "-i", aio, "-c",
           str(count), "-d", "64", "-s", str(bs), str(image)]
    if workload == "seqwrite":
        cmd[2:2] = ["-w"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Run completed in ([\d.]+) seconds", out)
    secs = float(m.group(1)) if m else time.perf_counter() - t0
    return TOTAL[bs] / secs / 1e6


@pytest.mark.parametrize("io", list(IO_SETUPS))
@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
@pytest.mark.parametrize("workload,bs", WORKLOADS)
def test_blk_path(benchmark, bench_binary: Path, images: dict[str, Path], fmt: str,
                  workload: str, bs: int, io: str) -> None:
    ours_rates: list[float] = []
    benchmark.pedantic(lambda: ours_rates.append(ours(bench_binary, images[fmt], fmt,
                                                      workload, bs, io)),
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)
    qemu_rates = [r for r in (qemu(images[fmt], fmt, workload, bs, io) for _ in range(ROUNDS))
                  if r is not None]
    best = max(ours_rates)
    info: dict[str, float] = {"ours_MB_s": best}
    if qemu_rates:
        info["qemu_img_bench_MB_s"] = max(qemu_rates)
    benchmark.extra_info.update(info)
    RESULTS[(io, fmt, workload, bs)] = info
    assert best > 0


def test_report() -> None:
    """Print the table (run with -s): MB/s, best of ROUNDS."""
    if not RESULTS:
        pytest.skip("no results (run the whole module)")

    def fmt(v: float | None) -> str:
        return f"{v:9.0f}" if v else "      n/a"

    print("\nio       workload        bs   raw ours  raw QEMU  qcow2 ours  qcow2 QEMU  "
          "qcow2/raw (ours)")
    for io in IO_SETUPS:
        for workload, bs in WORKLOADS:
            r, q = RESULTS.get((io, "raw", workload, bs)), RESULTS.get((io, "qcow2", workload, bs))
            if not r or not q:
                continue
            print(f"{io:8s} {workload:10s} {bs:8d} {fmt(r['ours_MB_s'])} "
                  f"{fmt(r.get('qemu_img_bench_MB_s'))}   {fmt(q['ours_MB_s'])}   "
                  f"{fmt(q.get('qemu_img_bench_MB_s'))}   {r['ours_MB_s'] / q['ours_MB_s']:6.2f}")
