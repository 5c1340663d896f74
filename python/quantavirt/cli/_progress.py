"""Progress bars of long CLI operations (image creation with preallocation, conversion).

Shown on stderr when it is a terminal, or always with ``--progress`` (``-p``, as qemu-img),
never with ``--no-progress``. The bar is one line rewritten in place:
``    (NN.NN/100%) [#######.......]  12.3 MiB/s``; the last update ends the line. The leading
underscore keeps this module from being registered as a CLI verb group.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

BAR_WIDTH = 30
MIN_STEP = 0.5  # redraw after at least this many percent (and at the end)


def add_progress_option(parser: argparse.ArgumentParser, *, short: bool = False) -> None:
    names = ["--progress", "-p"] if short else ["--progress"]
    parser.add_argument(*names, dest="progress", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="show a progress bar on stderr (default: when stderr is a "
                             "terminal)")


def wanted(choice: bool | None, stream: TextIO | None = None) -> bool:
    """--progress / --no-progress, else whether the stream (stderr) is a terminal."""
    if choice is not None:
        return choice
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """A ``progress(done, total)`` callback drawing the bar on `stream` (default stderr)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.last = -1.0
        self.t0 = time.monotonic()
        self.finished = False

    def __call__(self, done: int, total: int) -> None:
        if self.finished:
            return
        pct = min(100.0, 100.0 * done / total) if total else 100.0
        end = done >= total
        if pct - self.last < MIN_STEP and not end:
            return
        self.last = pct
        fill = int(BAR_WIDTH * pct / 100)
        rate = done / max(time.monotonic() - self.t0, 1e-9) / (1 << 20)
        self.stream.write(f"\r    ({pct:6.2f}/100%) [{'#' * fill}{'.' * (BAR_WIDTH - fill)}]"
                          f" {rate:8.1f} MiB/s")
        if end:
            self.stream.write("\n")
            self.finished = True
        self.stream.flush()


def callback(choice: bool | None) -> ProgressBar | None:
    """The bar when one is wanted (see :func:`wanted`), else None."""
    return ProgressBar() if wanted(choice) else None


class FileAllocationWatch:
    """Progress of a C routine that fills a file it sized first (ftruncate, then writes):
    a thread reports the file's allocated bytes (st_blocks) against its size until stopped.
    Used where the work runs in one call that takes no callback (the encrypted format's
    preallocation seals every sector inside qv_disk_create_encrypted)."""

    def __init__(self, path: str, bar: ProgressBar, interval: float = 0.2) -> None:
        import threading

        self.path = path
        self.bar = bar
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qv-progress", daemon=True)

    def _sample(self) -> tuple[int, int] | None:
        import os

        try:
            st = os.stat(self.path)
        except OSError:
            return None
        if st.st_size == 0:
            return None
        return min(st.st_blocks * 512, st.st_size), st.st_size

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            sample = self._sample()
            if sample is not None and sample[0] < sample[1]:
                self.bar(*sample)

    def __enter__(self) -> FileAllocationWatch:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._stop.set()
        self._thread.join()
        if exc_type is None:
            sample = self._sample()
            total = sample[1] if sample else 1
            self.bar(total, total)  # done: the routine returned successfully
