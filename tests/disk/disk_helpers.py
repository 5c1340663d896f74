"""Helpers for the block-layer tests: the real qemu-img / qemu-io, and an in-memory disk model."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from quantavirt.storage import Disk

QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")

needs_qemu = pytest.mark.skipif(QEMU_IMG is None or QEMU_IO is None,
                                reason="qemu-utils (qemu-img, qemu-io) not installed")


def qemu_img(*args: str) -> subprocess.CompletedProcess[str]:
    assert QEMU_IMG is not None
    return subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, timeout=300)


def qemu_io(image: Path, command: str, fmt: str = "qcow2") -> str:
    assert QEMU_IO is not None
    out = subprocess.run([QEMU_IO, "-f", fmt, "-c", command, str(image)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def check_clean(image: Path, allow_leaks: bool = False) -> dict[str, object]:
    """qemu-img check must find no corruption (and, unless allowed, no leaks)."""
    out = qemu_img("check", "--output=json", str(image))
    assert out.stdout, out.stderr
    report = json.loads(out.stdout)
    assert report.get("corruptions", 0) == 0, out.stdout
    assert report.get("check-errors", 0) == 0, out.stdout
    if not allow_leaks:
        assert report.get("leaks", 0) == 0, out.stdout
        assert out.returncode == 0, out.stdout + out.stderr
    return report


def convert_to_raw(image: Path, dest: Path) -> bytes:
    out = qemu_img("convert", "-O", "raw", str(image), str(dest))
    assert out.returncode == 0, out.stderr
    return dest.read_bytes()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class DiskModel:
    """What the disk must contain after a sequence of operations."""

    def __init__(self, data: bytes, cluster_size: int | None, discard_zeroes: bool) -> None:
        self.data = bytearray(data)
        self.cluster_size = cluster_size  # None: raw (discard zeroes the exact range)
        self.discard_zeroes = discard_zeroes

    def write(self, off: int, data: bytes) -> None:
        self.data[off:off + len(data)] = data

    def write_zeroes(self, off: int, length: int) -> None:
        self.data[off:off + length] = bytes(length)

    def discard(self, off: int, length: int) -> None:
        if not self.discard_zeroes:
            return
        if self.cluster_size is None:
            self.write_zeroes(off, length)
            return
        cs, end = self.cluster_size, off + length
        pos = -(-off // cs) * cs
        while pos < end:
            if end - pos < cs and end != len(self.data):
                break
            n = min(cs, len(self.data) - pos)
            self.data[pos:pos + n] = bytes(n)
            pos += cs


def random_ops(disk: Disk, model: DiskModel, rng: random.Random, count: int,
               cluster_size: int) -> None:
    """Random reads, writes, discards and write_zeroes, checked against the model as we go."""
    size = len(model.data)
    for _ in range(count):
        kind = rng.choices(("write", "read", "discard", "zeroes", "flush"),
                           weights=(10, 6, 2, 2, 1))[0]
        shape = rng.random()
        if shape < 0.3:  # straddle a cluster boundary
            boundary = rng.randrange(1, max(2, size // cluster_size)) * cluster_size
            off = max(0, boundary - rng.randrange(1, min(cluster_size, 8192) + 1))
            length = rng.randrange(1, 3 * cluster_size)
        elif shape < 0.5:  # whole clusters
            off = rng.randrange(0, size // cluster_size) * cluster_size
            length = cluster_size * rng.randrange(1, 4)
        else:
            off = rng.randrange(0, size)
            length = rng.randrange(1, 70000)
        length = max(1, min(length, size - off))
        if kind == "write":
            data = rng.randbytes(length)
            disk.write(off, data)
            model.write(off, data)
        elif kind == "read":
            assert disk.read(off, length) == bytes(model.data[off:off + length]), (off, length)
        elif kind == "discard":
            disk.discard(off, length)
            model.discard(off, length)
        elif kind == "zeroes":
            disk.write_zeroes(off, length)
            model.write_zeroes(off, length)
        else:
            disk.flush()
