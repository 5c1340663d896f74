"""A writer for the kill -9 test: deterministic random writes, write_zeroes and discards through
our block layer, a flush
every K operations, and after each flush returns the count of completed operations appended to
a side file (fsynced), so the test knows what was acknowledged as durable."""

from __future__ import annotations

import os
import random
import sys

from quantavirt.storage import open_disk


def next_op(rng: random.Random, size: int) -> tuple[str, int, int, int]:
    """(kind, offset, length, data seed) of the next operation."""
    r = rng.random()
    kind = "zeroes" if r < 0.1 else "discard" if r < 0.2 else "write"
    length = rng.randrange(1, 200_000)
    off = rng.randrange(0, size - length)
    return kind, off, length, rng.randrange(1 << 30)


def data_for(seed: int, length: int) -> bytes:
    return random.Random(seed).randbytes(length)


def main() -> None:
    image, seed, every, side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    cache = sys.argv[5] if len(sys.argv) > 5 else "writeback"
    rng = random.Random(seed)
    fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with open_disk(image, discard=True, cache=cache) as disk:
        size = disk.size
        done = 0
        while True:
            kind, off, length, dseed = next_op(rng, size)
            if kind == "write":
                disk.write(off, data_for(dseed, length))
            elif kind == "zeroes":
                disk.write_zeroes(off, length)
            else:
                disk.discard(off, length)
            done += 1
            if done % every == 0:
                disk.flush()
                os.write(fd, f"{done}\n".encode())
                os.fsync(fd)


if __name__ == "__main__":
    main()
