"""qcow2 images made by the real qemu-img, read and written through our C layer, then checked
by qemu-img check and compared byte for byte with qemu-img convert."""

from __future__ import annotations

import json
import mmap
import random
from pathlib import Path

import pytest
from disk_helpers import (
    DiskModel,
    check_clean,
    convert_to_raw,
    needs_qemu,
    qemu_img,
    qemu_io,
    random_ops,
)

from quantavirt.storage import info, open_disk

pytestmark = needs_qemu

SIZE = 8 << 20


@pytest.mark.parametrize(
    ("options", "cluster_size"),
    [
        ("compat=1.1", 65536),
        ("compat=0.10", 65536),
        ("compat=1.1,cluster_size=4096", 4096),
        ("compat=0.10,cluster_size=512", 512),
        ("compat=1.1,cluster_size=2M", 2 << 20),
        ("compat=1.1,cluster_size=512,refcount_bits=1", 512),
        ("compat=1.1,cluster_size=512,refcount_bits=64", 512),
        ("compat=1.1,cluster_size=1024,refcount_bits=8", 1024),
        ("compat=1.1,lazy_refcounts=on", 65536),
    ],
)
@pytest.mark.parametrize("discard", [False, True])
def test_random_io_matches_qemu(tmp_path: Path, options: str, cluster_size: int,
                                discard: bool) -> None:
    image = tmp_path / "disk.qcow2"
    out = qemu_img("create", "-q", "-f", "qcow2", "-o", options, str(image), str(SIZE))
    assert out.returncode == 0, out.stderr
    rng = random.Random(f"{options}-{discard}")
    model = DiskModel(bytes(SIZE), cluster_size, discard_zeroes=discard)
    with open_disk(image, format="qcow2", discard=discard) as disk:
        assert disk.size == SIZE and disk.format == "qcow2"
        random_ops(disk, model, rng, 300, cluster_size)
        assert disk.read(0, SIZE) == bytes(model.data)
    check_clean(image)
    assert convert_to_raw(image, tmp_path / "out.raw") == bytes(model.data)
    # Reopen: everything persisted and still reads the same through our layer.
    with open_disk(image) as disk:
        assert disk.read(0, SIZE) == bytes(model.data)


@pytest.mark.parametrize("cache", ["none", "writethrough", "directsync"])
def test_cache_modes(tmp_path: Path, cache: str) -> None:
    """O_DIRECT data path (aligned and unaligned buffers) and O_DSYNC metadata."""
    image = tmp_path / "c.qcow2"
    assert qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", str(image),
                    "4M").returncode == 0
    model = DiskModel(bytes(4 << 20), 4096, discard_zeroes=True)
    with open_disk(image, cache=cache, discard=True) as disk:
        random_ops(disk, model, random.Random(cache), 150, 4096)
        # Page-aligned buffers and offsets take the O_DIRECT descriptor.
        buf = mmap.mmap(-1, 64 << 10)  # page-aligned memory
        buf[:] = random.Random(9).randbytes(64 << 10)
        disk.write(1 << 20, buf)  # type: ignore[arg-type]
        model.write(1 << 20, bytes(buf))
        buf[:] = bytes(64 << 10)
        disk.readinto(1 << 20, memoryview(buf))
        assert bytes(buf) == bytes(model.data[1 << 20:(1 << 20) + (64 << 10)])
        buf.close()
    check_clean(image)
    assert convert_to_raw(image, tmp_path / "out.raw") == bytes(model.data)


def test_refcount_table_grows(tmp_path: Path) -> None:
    """512-byte clusters with 64-bit refcounts: one refcount block covers 32 KiB, so writing a
    few MiB forces new refcount blocks and a larger refcount table."""
    image = tmp_path / "grow.qcow2"
    assert qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64",
                    str(image), "16M").returncode == 0
    before = image.read_bytes()[48:60]
    rng = random.Random(7)
    data = rng.randbytes(6 << 20)
    with open_disk(image) as disk:
        for off in range(0, len(data), 256 << 10):
            disk.write(off, data[off:off + (256 << 10)])
    assert image.read_bytes()[48:60] != before  # refcount table moved / grew
    check_clean(image)
    assert convert_to_raw(image, tmp_path / "out.raw")[:len(data)] == data


def test_qemu_io_data_reads_back(tmp_path: Path) -> None:
    image = tmp_path / "io.qcow2"
    assert qemu_img("create", "-q", "-f", "qcow2", str(image), "4M").returncode == 0
    qemu_io(image, "write -P 0xab 0 64k")
    qemu_io(image, "write -P 0xcd 100000 3000")
    qemu_io(image, "write -z 1M 128k")
    with open_disk(image, readonly=True) as disk:
        assert disk.read(0, 65536) == b"\xab" * 65536
        assert disk.read(100000, 3000) == b"\xcd" * 3000
        assert disk.read(65536, 100000 - 65536) == bytes(100000 - 65536)
        assert disk.read(1 << 20, 128 << 10) == bytes(128 << 10)
    # And the other way: what we write, qemu-io reads.
    with open_disk(image) as disk:
        disk.write(2 << 20, b"\x5a" * 4096)
    assert "Pattern verification failed" not in qemu_io(image, "read -P 0x5a 2M 4k")
    check_clean(image)


def test_compressed_clusters_read(tmp_path: Path) -> None:
    src = tmp_path / "src.raw"
    rng = random.Random(3)
    data = b"".join(bytes([rng.randrange(4)]) * 512 for _ in range(4096))  # compressible
    src.write_bytes(data)
    image = tmp_path / "comp.qcow2"
    assert qemu_img("convert", "-c", "-O", "qcow2", str(src), str(image)).returncode == 0
    with open_disk(image) as disk:
        assert disk.read(0, len(data)) == data
        # Writes into compressed clusters copy-on-write the decompressed cluster.
        disk.write(1000, b"\x99" * 100)
    expected = data[:1000] + b"\x99" * 100 + data[1100:]
    check_clean(image)
    assert convert_to_raw(image, tmp_path / "out.raw") == expected


def test_internal_snapshot_image(tmp_path: Path) -> None:
    """An image with an internal snapshot: reads see the current data; writes to clusters and
    L2 tables shared with the snapshot copy them, and the snapshot keeps its data."""
    image = tmp_path / "snap.qcow2"
    far = 600 << 20  # under the second L1 entry (one L2 table maps 512 MiB)
    assert qemu_img("create", "-q", "-f", "qcow2", str(image), "1G").returncode == 0
    qemu_io(image, "write -P 0x11 0 128k")
    qemu_io(image, f"write -P 0x11 {far} 128k")
    assert qemu_img("snapshot", "-c", "s1", str(image)).returncode == 0
    qemu_io(image, "write -P 0x22 0 64k")  # QEMU copies the first L2 table
    assert info(image)["snapshots"] == 1
    with open_disk(image, discard=True) as disk:
        assert disk.read(0, 65536) == b"\x22" * 65536
        assert disk.read(65536, 65536) == b"\x11" * 65536
        disk.write(65536 + 100, b"\x33" * 10)  # shared data cluster: copy on write
        assert disk.read(65536, 200)[100:110] == b"\x33" * 10
        disk.write(far + 5, b"\x44" * 7)  # shared L2 table: copied first
        disk.discard(far + 65536, 65536)  # drops our reference only
        assert disk.read(far, 12) == b"\x11" * 5 + b"\x44" * 7
        assert disk.read(far + 65536, 65536) == bytes(65536)
    check_clean(image)
    assert convert_to_raw(image, tmp_path / "now.raw")[far:far + 12] == b"\x11" * 5 + b"\x44" * 7
    # The snapshot still holds the original data everywhere.
    assert qemu_img("snapshot", "-a", "s1", str(image)).returncode == 0
    check_clean(image)
    with open_disk(image, readonly=True) as disk:
        assert disk.read(0, 131072) == b"\x11" * 131072
        assert disk.read(far, 131072) == b"\x11" * 131072


def test_freed_clusters_are_reused(tmp_path: Path) -> None:
    """Discarded clusters (and ones freed by an earlier session) are allocated again, so a
    discard/rewrite cycle does not grow the file."""
    image = tmp_path / "reuse.qcow2"
    assert qemu_img("create", "-q", "-f", "qcow2", str(image), "16M").returncode == 0
    rng = random.Random(5)
    first = rng.randbytes(8 << 20)
    with open_disk(image, discard=True) as disk:
        disk.write(0, first)
        disk.discard(0, 8 << 20)
        assert disk.read(0, 8 << 20) == bytes(8 << 20)
    size_after_first = image.stat().st_size
    check_clean(image)
    second = rng.randbytes(8 << 20)
    with open_disk(image, discard=True) as disk:  # a new session finds the free clusters
        disk.write(4 << 20, second)
        disk.discard(4 << 20, 4 << 20)
        disk.write(8 << 20, second[:4 << 20])
    assert image.stat().st_size <= size_after_first + (1 << 20)
    check_clean(image)
    expected = bytes(8 << 20) + second[:4 << 20] + bytes(4 << 20)
    assert convert_to_raw(image, tmp_path / "out.raw") == expected


def test_zero_clusters_and_holes(tmp_path: Path) -> None:
    """write_zeroes of whole clusters sets the v3 zero flag (no data cluster); discard frees
    the cluster and punches a hole, so the file's allocated size drops."""
    image = tmp_path / "z.qcow2"
    assert qemu_img("create", "-q", "-f", "qcow2", str(image), "8M").returncode == 0
    with open_disk(image, discard=True) as disk:
        disk.write(0, random.Random(1).randbytes(8 << 20))
        disk.flush()
        allocated = image.stat().st_blocks
        disk.write_zeroes(1 << 20, 1 << 20)
        disk.discard(4 << 20, 2 << 20)
        disk.flush()
        assert disk.read(1 << 20, 1 << 20) == bytes(1 << 20)
        assert disk.read(4 << 20, 2 << 20) == bytes(2 << 20)
    # 3 MiB fewer allocated (give or take a metadata block).
    assert image.stat().st_blocks <= allocated - (3 << 20) // 512 + 64
    check_clean(image)
    extents = json.loads(qemu_img("map", "--output=json", str(image)).stdout)
    by_start = {e["start"]: e for e in extents}
    assert by_start[1 << 20]["zero"] and not by_start[1 << 20]["data"]
    assert by_start[1 << 20]["length"] == 1 << 20
    assert not by_start[4 << 20]["data"]
