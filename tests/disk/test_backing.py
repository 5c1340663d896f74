"""Backing chains: qcow2 over qcow2 over raw. Reads fall through, writes copy on write, the
backing files never change."""

from __future__ import annotations

import random
from pathlib import Path

from disk_helpers import (
    DiskModel,
    check_clean,
    convert_to_raw,
    needs_qemu,
    qemu_img,
    random_ops,
    sha256,
)

from quantavirt.errors import QVError
from quantavirt.storage import create, info, open_disk

SIZE = 6 << 20


@needs_qemu
def test_chain_reads_and_cow(tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    base_data = random.Random(11).randbytes(SIZE)
    base.write_bytes(base_data)
    mid = tmp_path / "mid.qcow2"
    # A qemu-img made middle layer with a relative backing name, then some data in it.
    assert qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw",
                    "-F", "raw", str(mid)).returncode == 0
    model = DiskModel(base_data, 4096, discard_zeroes=False)
    with open_disk(mid) as disk:
        random_ops(disk, model, random.Random(12), 60, 4096)
    top = create(tmp_path / "top.qcow2", "qcow2", None, backing="mid.qcow2")
    assert info(top)["backing_file"] == "mid.qcow2" and info(top)["virtual_size"] == SIZE
    hashes = (sha256(base), sha256(mid))
    with open_disk(top, discard=True) as disk:
        assert disk.read(0, SIZE) == bytes(model.data)  # all through the chain
        # discard on a v3 image over a backing file sets the zero flag: whole clusters read
        # as zeros afterwards, as the model expects.
        model.cluster_size, model.discard_zeroes = 65536, True
        random_ops(disk, model, random.Random(13), 300, 65536)
        assert disk.read(0, SIZE) == bytes(model.data)
    assert (sha256(base), sha256(mid)) == hashes
    check_clean(top)
    check_clean(mid)
    assert convert_to_raw(top, tmp_path / "flat.raw") == bytes(model.data)


@needs_qemu
def test_v2_over_qcow2_partial_writes(tmp_path: Path) -> None:
    base = tmp_path / "b.qcow2"
    assert qemu_img("create", "-q", "-f", "qcow2", str(base), "1M").returncode == 0
    with open_disk(base) as d:
        d.write(0, b"\x11" * (1 << 20))
    top = tmp_path / "t.qcow2"
    assert qemu_img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", str(base), "-F",
                    "qcow2", str(top)).returncode == 0
    h = sha256(base)
    with open_disk(top) as d:
        d.write(70000, b"\x22" * 10)  # partial cluster: the rest comes from the backing file
        assert d.read(65536, 65536) == b"\x11" * (70000 - 65536) + b"\x22" * 10 + b"\x11" * (
            131072 - 70010)
        # Random I/O over the backing file (write_zeroes must hide the backing data in v2,
        # which has no zero flag, by writing zero clusters).
        model = DiskModel(d.read(0, 1 << 20), 65536, discard_zeroes=False)
        random_ops(d, model, random.Random(21), 200, 65536)
        assert d.read(0, 1 << 20) == bytes(model.data)
    assert sha256(base) == h
    check_clean(top)
    assert convert_to_raw(top, tmp_path / "t.raw") == bytes(model.data)


def test_backing_loop_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    create(a, "qcow2", 1 << 20)
    create(b, "qcow2", 1 << 20, backing="a.qcow2")
    # Rewrite a's header to name b as its backing file: a -> b -> a.
    _set_backing(a, "b.qcow2")
    for image in (a, b):
        try:
            open_disk(image)
        except QVError as err:
            assert err.name == "QV_STR_ERR_CORRUPT" and "loop" in err.message
        else:
            raise AssertionError("a backing loop was accepted")


def test_self_backing_is_refused(tmp_path: Path) -> None:
    a = tmp_path / "self.qcow2"
    create(a, "qcow2", 1 << 20)
    _set_backing(a, "self.qcow2")
    try:
        open_disk(a)
    except QVError as err:
        assert err.name == "QV_STR_ERR_CORRUPT"
    else:
        raise AssertionError("a self-referencing image was accepted")


def test_missing_backing_file(tmp_path: Path) -> None:
    a = tmp_path / "orphan.qcow2"
    create(a, "qcow2", 1 << 20)
    _set_backing(a, "gone.raw")
    try:
        open_disk(a)
    except QVError as err:
        assert err.name == "QV_ERR_NOENT" and "gone.raw" in err.message
    else:
        raise AssertionError("a missing backing file was accepted")


def _set_backing(image: Path, name: str) -> None:
    """Point an image made by storage.create at another backing file (name after the header)."""
    data = bytearray(image.read_bytes())
    off = 4096
    data[off:off + len(name)] = name.encode()
    data[8:16] = off.to_bytes(8, "big")
    data[16:20] = len(name).to_bytes(4, "big")
    image.write_bytes(bytes(data))
