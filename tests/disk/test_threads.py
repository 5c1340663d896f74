"""Several threads on one disk at once (cffi drops the GIL in C calls): writes to neighbouring
sectors of the same blocks and clusters must never lose each other."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from quantavirt.storage import create, open_disk

SIZE = 4 << 20


@pytest.mark.parametrize(("fmt", "cache"), [("raw", "none"), ("raw", "writeback"),
                                            ("qcow2", "writeback"), ("qcow2", "none")])
def test_concurrent_sector_writes(tmp_path: Path, fmt: str, cache: str) -> None:
    image = create(tmp_path / f"t.{fmt}", fmt, SIZE)
    threads_n, expected = 4, bytearray(SIZE)
    errors: list[BaseException] = []
    # Thread t owns 512-byte sectors with index % 4 == t: every 4 KiB block and every cluster
    # is shared by all threads, so read-modify-write and cluster allocation are contended.
    plans = []
    for t in range(threads_n):
        rng = random.Random(t)
        sectors = [s for s in range(SIZE // 512) if s % threads_n == t]
        rng.shuffle(sectors)
        plan = [(s * 512 + rng.randrange(0, 256), rng.randbytes(rng.randrange(1, 257)))
                for s in sectors[:1500]]
        for off, data in plan:
            expected[off:off + len(data)] = data
        plans.append(plan)
    with open_disk(image, cache=cache) as disk:
        def run(plan: list[tuple[int, bytes]]) -> None:
            try:
                for off, data in plan:
                    disk.write(off, data)
            except BaseException as err:  # noqa: BLE001 - reported by the main thread
                errors.append(err)

        workers = [threading.Thread(target=run, args=(p,)) for p in plans]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert not errors, errors
        assert disk.read(0, SIZE) == bytes(expected)
