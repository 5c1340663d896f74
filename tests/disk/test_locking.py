"""Image locking: one writer or many readers, against ourselves and against QEMU."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from disk_helpers import QEMU_IO, needs_qemu

from quantavirt.errors import QVError
from quantavirt.storage import create, info, open_disk


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_one_writer_or_many_readers(tmp_path: Path, fmt: str) -> None:
    image = create(tmp_path / f"l.{fmt}", fmt, 1 << 20)
    with open_disk(image) as writer:
        for readonly in (False, True):
            with pytest.raises(QVError) as err:
                open_disk(image, readonly=readonly)
            assert err.value.name == "QV_ERR_BUSY" and "in use" in err.value.message
        writer.write(0, b"ok")
    with open_disk(image, readonly=True) as r1, open_disk(image, readonly=True) as r2:
        assert r1.read(0, 2) == r2.read(0, 2) == b"ok"
        with pytest.raises(QVError):
            open_disk(image)
    with open_disk(image) as again:  # released on close
        assert again.read(0, 2) == b"ok"


def test_backing_file_shared_by_two_overlays(tmp_path: Path) -> None:
    base = create(tmp_path / "base.raw", "raw", 1 << 20)
    a = create(tmp_path / "a.qcow2", "qcow2", None, backing="base.raw")
    b = create(tmp_path / "b.qcow2", "qcow2", None, backing="base.raw")
    with open_disk(a) as da, open_disk(b) as db:
        da.write(0, b"a")
        db.write(0, b"b")
        with pytest.raises(QVError) as err:
            open_disk(base)  # a writer on a base in use would corrupt both overlays
        assert err.value.name == "QV_ERR_BUSY"


@needs_qemu
def test_qemu_and_us_exclude_each_other(tmp_path: Path) -> None:
    image = create(tmp_path / "q.qcow2", "qcow2", 1 << 20)
    with open_disk(image):
        out = subprocess.run([str(QEMU_IO), "-c", "write 0 512", str(image)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 or "lock" in out.stderr + out.stdout
        assert "lock" in (out.stderr + out.stdout).lower()
    # qemu-io holding the image open (reading commands from a pipe) keeps us out.
    proc = subprocess.Popen([str(QEMU_IO), str(image)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdin is not None
        proc.stdin.write("write -P 0x7 0 512\n")
        proc.stdin.flush()
        # Wait until qemu-io has the image open: it prints the result of the write.
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "wrote" in line, line
        with pytest.raises(QVError) as err:
            open_disk(image)
        assert err.value.name == "QV_ERR_BUSY"
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)
    with open_disk(image, readonly=True) as disk:
        assert disk.read(0, 512) == b"\x07" * 512


def test_info_of_an_image_in_use(tmp_path: Path) -> None:
    image = create(tmp_path / "busy.qcow2", "qcow2", 1 << 20)
    with open_disk(image) as disk:
        disk.write(0, b"x")
        assert info(image)["virtual_size"] == 1 << 20  # force-share inspection
        with open_disk(image, readonly=True, force_share=True) as peek:
            assert peek.read(0, 1) == b"x"
        with pytest.raises(QVError) as err:
            open_disk(image, force_share=True)  # never for writing
        assert err.value.name == "QV_ERR_INVAL"
