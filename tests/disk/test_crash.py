"""kill -9 of a writer in the middle of a long write stream: the image stays free of
corruption (leaks allowed) and every write acknowledged by a completed flush is intact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from disk_helpers import check_clean, convert_to_raw, needs_qemu, qemu_img

from quantavirt.storage import open_disk

sys.path.insert(0, str(Path(__file__).parent))
from crash_writer import data_for, next_op  # noqa: E402

SIZE = 64 << 20
EVERY = 8


@needs_qemu
@pytest.mark.parametrize(("options", "seconds", "cache"), [
    ("cluster_size=65536", 2.5, "writeback"),
    ("cluster_size=4096", 2.5, "writeback"),
    ("cluster_size=512,refcount_bits=64", 2.0, "writeback"),  # refcount table growth
    ("compat=0.10,cluster_size=16384", 1.5, "writeback"),
    ("cluster_size=65536", 2.0, "none"),
])
def test_kill_during_writes(tmp_path: Path, options: str, seconds: float, cache: str) -> None:
    image, side = tmp_path / "crash.qcow2", tmp_path / "flushed.txt"
    assert qemu_img("create", "-q", "-f", "qcow2", "-o", options, str(image),
                    str(SIZE)).returncode == 0
    seed = zlib.crc32(options.encode())
    writer = subprocess.Popen([sys.executable, str(Path(__file__).parent / "crash_writer.py"),
                               str(image), str(seed), str(EVERY), str(side), cache])
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and writer.poll() is None:
            time.sleep(0.05)
        assert writer.poll() is None, "the writer died on its own"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    lines = side.read_text().split() if side.exists() else []
    assert lines, "no flush completed before the kill"
    flushed = int(lines[-1])

    report = check_clean(image, allow_leaks=True)
    # Replay: the model after every acknowledged operation (discarded bytes are undefined
    # until rewritten), and the ranges later, possibly half-done operations may have touched:
    # at most the next two flush intervals.
    rng = random.Random(seed)
    model = np.zeros(SIZE, dtype=np.uint8)
    defined = np.ones(SIZE, dtype=bool)
    for _ in range(flushed):
        kind, off, length, dseed = next_op(rng, SIZE)
        if kind == "write":
            model[off:off + length] = np.frombuffer(data_for(dseed, length), dtype=np.uint8)
        elif kind == "zeroes":
            model[off:off + length] = 0
        defined[off:off + length] = kind != "discard"
    for _ in range(2 * EVERY):
        _, off, length, _ = next_op(rng, SIZE)
        defined[off:off + length] = False
    actual = np.frombuffer(convert_to_raw(image, tmp_path / "flat.raw"), dtype=np.uint8)
    lost = np.flatnonzero((actual != model) & defined)
    assert lost.size == 0, f"acknowledged data lost at {lost[:5]} ({report})"
    assert defined.sum() > SIZE // 4  # the check covered a good part of the disk
    # The image is still usable by us: open, write, close, clean.
    with open_disk(image) as disk:
        disk.write(0, b"after" * 1000)
    check_clean(image, allow_leaks=True)
