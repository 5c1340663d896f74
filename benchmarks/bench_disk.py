"""Block-layer throughput: raw against qcow2 on the same data, through the C layer.

Run: .venv/bin/python -m pytest benchmarks/bench_disk.py -s
Each group holds the raw and the qcow2 variant of one workload; the qcow2 overhead is the ratio
of their means (the summary printed at the end). Page cache (cache=writeback) so the numbers
measure the format code, not the disk.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantavirt.storage import Disk, create, open_disk

SIZE = 64 << 20
MIB = 1 << 20
RANDOM_OPS = 5000
RESULTS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A raw and a qcow2 image holding the same 64 MiB (every qcow2 cluster allocated)."""
    d = tmp_path_factory.mktemp("bench")
    data = random.Random(0).randbytes(SIZE)
    paths = {"raw": create(d / "b.raw", "raw", SIZE), "qcow2": create(d / "b.qcow2", "qcow2", SIZE)}
    for path in paths.values():
        with open_disk(path) as disk:
            for off in range(0, SIZE, MIB):
                disk.write(off, data[off:off + MIB])
            disk.flush()
    # The way a file was written shapes its page cache (folio sizes), which changes 4K write
    # costs by 2-3x on its own: drop both files from the cache and read them back the same way
    # so raw and qcow2 start equal.
    for path in paths.values():
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while os.read(fd, MIB):
            pass
        os.close(fd)
    return paths


@pytest.fixture(params=["raw", "qcow2"])
def disk(request: pytest.FixtureRequest, images: dict[str, Path]) -> Iterator[Disk]:
    os.sync()  # no writeback of an earlier test's dirty pages during this one
    with open_disk(images[request.param]) as d:
        yield d
        d.flush()


def _record(benchmark: pytest.FixtureRequest, group: str, disk: Disk, nbytes: int) -> None:
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["MiB/s"] = round(nbytes / mean / MIB, 1)
    RESULTS[(group, disk.format)] = mean


@pytest.mark.benchmark(group="seq read 1M")
def test_seq_read_1m(benchmark, disk: Disk) -> None:  # type: ignore[no-untyped-def]
    buf = bytearray(MIB)

    def run() -> None:
        for off in range(0, SIZE, MIB):
            disk.readinto(off, buf)

    benchmark(run)
    _record(benchmark, "seq read 1M", disk, SIZE)


@pytest.mark.benchmark(group="seq write 1M")
def test_seq_write_1m(benchmark, disk: Disk) -> None:  # type: ignore[no-untyped-def]
    block = random.Random(1).randbytes(MIB)

    def run() -> None:
        for off in range(0, SIZE, MIB):
            disk.write(off, block)

    benchmark(run)
    _record(benchmark, "seq write 1M", disk, SIZE)


@pytest.mark.benchmark(group="rand read 4K")
def test_rand_read_4k(benchmark, disk: Disk) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(2)
    offsets = [rng.randrange(SIZE // 4096) * 4096 for _ in range(RANDOM_OPS)]
    buf = bytearray(4096)

    def run() -> None:
        for off in offsets:
            disk.readinto(off, buf)

    benchmark(run)
    _record(benchmark, "rand read 4K", disk, RANDOM_OPS * 4096)
    benchmark.extra_info["IOPS"] = round(RANDOM_OPS / benchmark.stats.stats.mean)


@pytest.mark.benchmark(group="rand write 4K")
def test_rand_write_4k(benchmark, disk: Disk) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    offsets = [rng.randrange(SIZE // 4096) * 4096 for _ in range(RANDOM_OPS)]
    block = rng.randbytes(4096)

    def run() -> None:
        for off in offsets:
            disk.write(off, block)

    benchmark(run)
    _record(benchmark, "rand write 4K", disk, RANDOM_OPS * 4096)
    benchmark.extra_info["IOPS"] = round(RANDOM_OPS / benchmark.stats.stats.mean)


@pytest.mark.benchmark(group="qcow2 allocating write 64K")
def test_alloc_write_64k(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """qcow2 only: first writes into a fresh image (cluster allocation, refcounts, L2)."""
    block = random.Random(4).randbytes(65536)
    counter = iter(range(1_000_000))

    def run() -> None:
        image = create(tmp_path / f"alloc{next(counter)}.qcow2", "qcow2", 32 * MIB)
        with open_disk(image) as d:
            for off in range(0, 32 * MIB, 65536):
                d.write(off, block)
        image.unlink()

    benchmark.pedantic(run, rounds=5, iterations=1)
    benchmark.extra_info["MiB/s"] = round(32 / benchmark.stats.stats.mean, 1)


def test_zz_overhead_summary() -> None:
    """Print the qcow2/raw ratio for every workload measured above."""
    lines = []
    for (group, fmt), mean in sorted(RESULTS.items()):
        if fmt == "qcow2" and (group, "raw") in RESULTS:
            ratio = mean / RESULTS[(group, "raw")]
            lines.append(f"{group}: qcow2 takes {ratio:.2f}x the time of raw")
    print("\n" + "\n".join(lines))
