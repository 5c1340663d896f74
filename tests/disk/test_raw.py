"""The raw backend: all cache modes, unaligned I/O under O_DIRECT, discard, read-only."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from disk_helpers import DiskModel, random_ops, sha256

from quantavirt.errors import QVError
from quantavirt.storage import create, open_disk

SIZE = (4 << 20) + 512 * 3  # not a multiple of 4 KiB: exercises the unaligned tail path


@pytest.mark.parametrize("cache", ["writeback", "none", "writethrough", "directsync"])
@pytest.mark.parametrize("discard", [False, True])
def test_random_io(tmp_path: Path, cache: str, discard: bool) -> None:
    image = tmp_path / "disk.raw"
    initial = random.Random(1).randbytes(SIZE)
    image.write_bytes(initial)
    model = DiskModel(initial, None, discard_zeroes=discard)
    with open_disk(image, format="raw", cache=cache, discard=discard) as disk:
        assert disk.size == SIZE and disk.format == "raw"
        random_ops(disk, model, random.Random(f"{cache}{discard}"), 200, 4096)
        disk.flush()
    assert image.read_bytes() == bytes(model.data)


def test_out_of_range_is_rejected(tmp_path: Path) -> None:
    image = create(tmp_path / "r.raw", "raw", 1 << 20)
    with open_disk(image) as disk:
        for off, n in ((1 << 20, 1), ((1 << 20) - 1, 2), (2**64 - 1, 1)):
            with pytest.raises(QVError) as err:
                disk.read(off, n)
            assert err.value.name == "QV_STR_ERR_RANGE"
        with pytest.raises(QVError):
            disk.write((1 << 20) - 10, b"x" * 11)
        for bad in (lambda: disk.read(-1, 10), lambda: disk.read(0, -5),
                    lambda: disk.discard(2**64, 1), lambda: disk.write_zeroes(0, -1)):
            with pytest.raises(QVError) as err:
                bad()
            assert err.value.name == "QV_ERR_INVAL"
        disk.close()
        with pytest.raises(QVError) as err:
            disk.read(0, 1)
        assert err.value.name == "QV_ERR_STATE"


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_readonly_leaves_file_untouched(tmp_path: Path, fmt: str) -> None:
    image = create(tmp_path / f"ro.{fmt}", fmt, 4 << 20)
    with open_disk(image) as disk:
        disk.write(12345, b"hello" * 1000)
    digest = sha256(image)
    with open_disk(image, readonly=True, discard=True) as disk:
        assert disk.readonly
        for op in (lambda: disk.write(0, b"x" * 512), lambda: disk.discard(0, 1 << 20),
                   lambda: disk.write_zeroes(0, 65536)):
            with pytest.raises(QVError) as err:
                op()
            assert err.value.name == "QV_STR_ERR_READONLY"
        disk.flush()
        assert disk.read(12345, 5000) == b"hello" * 1000
    assert sha256(image) == digest


def test_permission_denied(tmp_path: Path) -> None:
    """An image the user may only read: opening it for writing is QV_ERR_PERM, read-only works
    (run as an unprivileged user in a child process, since root ignores file modes)."""
    shared = Path(tempfile.mkdtemp(prefix="qv-perm-"))
    try:
        shared.chmod(0o755)
        image = create(shared / "ro.raw", "raw", 1 << 20)
        image.chmod(0o444)
        code = textwrap.dedent(f"""
            from quantavirt.errors import QVError
            from quantavirt.storage import open_disk
            try:
                open_disk({str(image)!r})
            except QVError as err:
                print(err.name)
            with open_disk({str(image)!r}, readonly=True) as d:
                print(len(d.read(0, 512)))
        """)
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            drop = []
        out = subprocess.run([*drop, sys.executable, "-c", code], capture_output=True,
                             text=True, timeout=60)
        if drop == [] and os.geteuid() == 0:
            pytest.skip("cannot drop privileges here")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["QV_ERR_PERM", "512"]
    finally:
        shutil.rmtree(shared)


def test_format_mismatch(tmp_path: Path) -> None:
    raw = create(tmp_path / "m.raw", "raw", 1 << 20)
    qcow = create(tmp_path / "m.qcow2", "qcow2", 1 << 20)
    with pytest.raises(QVError) as err:
        open_disk(raw, format="qcow2")
    assert err.value.name == "QV_STR_ERR_FORMAT"
    with pytest.raises(QVError) as err:
        open_disk(qcow, format="raw")
    assert err.value.name == "QV_STR_ERR_FORMAT"
    with open_disk(qcow) as d, open_disk(raw) as r:  # auto-detection
        assert (d.format, r.format) == ("qcow2", "raw")


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(QVError) as err:
        open_disk(tmp_path / "nope.raw")
    assert err.value.name == "QV_ERR_NOENT"


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loop block device over a 8 MiB file (needs root and /dev/loop-control)."""
    backing = tmp_path / "loop.img"
    backing.write_bytes(random.Random(5).randbytes(8 << 20))
    if shutil.which("losetup") is None or os.geteuid() != 0:
        pytest.skip("losetup needs root")
    out = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        pytest.skip(f"no loop devices here: {out.stderr.strip()}")
    dev = out.stdout.strip()
    try:
        yield dev, backing
    finally:
        subprocess.run(["losetup", "-d", dev], timeout=30, check=False)


@pytest.mark.parametrize("cache", ["none", "writeback"])
def test_block_device(loop_device: tuple[str, Path], cache: str) -> None:
    """Size through BLKGETSIZE64; O_DIRECT with the device's sector alignment."""
    dev, backing = loop_device
    model = DiskModel(backing.read_bytes(), None, discard_zeroes=False)
    with open_disk(dev, format="raw", cache=cache) as disk:
        assert disk.size == 8 << 20
        random_ops(disk, model, random.Random(cache), 150, 4096)
        disk.flush()
    with open(dev, "rb") as f:
        assert f.read() == bytes(model.data)
    with pytest.raises(QVError) as err:
        open_disk(dev, format="qcow2")
    assert err.value.name == "QV_STR_ERR_FORMAT"
