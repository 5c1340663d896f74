"""Disk images: create raw and qcow2 images, inspect them, and do I/O through the C block layer.

The I/O path is the one the virtio-blk device uses (csrc/disk/), so the tests exercise the real
code. The qcow2 writer here is our own: a version 3 header, 64 KiB clusters, 16-bit refcounts.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from quantavirt._ffi import c_string, ffi, lib
from quantavirt.errors import QVError

QCOW2_MAGIC = b"QFI\xfb"
DEFAULT_CLUSTER_BITS = 16
FORMATS = ("raw", "qcow2")
PREALLOC_CHUNK = 4 << 20

#: ``progress(done_bytes, total_bytes)``, called as a long operation advances.
ProgressCallback = Callable[[int, int], None]
CACHE_MODES = {
    "writeback": lib.QV_DISK_CACHE_WRITEBACK,
    "none": lib.QV_DISK_CACHE_NONE,
    "writethrough": lib.QV_DISK_CACHE_WRITETHROUGH,
    "directsync": lib.QV_DISK_CACHE_DIRECTSYNC,
}
_FORMAT_CODES = {
    None: lib.QV_DISK_FORMAT_AUTO,
    "auto": lib.QV_DISK_FORMAT_AUTO,
    "raw": lib.QV_DISK_FORMAT_RAW,
    "qcow2": lib.QV_DISK_FORMAT_QCOW2,
    "encrypted": lib.QV_DISK_FORMAT_ENCRYPTED,
}
_FORMAT_NAMES = {lib.QV_DISK_FORMAT_RAW: "raw", lib.QV_DISK_FORMAT_QCOW2: "qcow2"}

# Header extension types and the names of the feature bits we write into the feature table.
_EXT_BACKING_FORMAT = 0xE2792ACA
_EXT_FEATURE_TABLE = 0x6803F857
_FEATURE_NAMES = (
    (0, 0, "dirty bit"),
    (0, 1, "corrupt bit"),
    (0, 2, "external data file"),
    (0, 3, "compression type"),
    (0, 4, "extended L2 entries"),
    (1, 0, "lazy refcounts"),
    (2, 0, "bitmaps"),
    (2, 1, "raw external data"),
)
_MAX_QCOW2_SIZE = 1 << 56
_MAX_L1_BYTES = 32 << 20  # what the C layer accepts


class Disk:
    """An open image. Offsets and lengths are bytes; errors raise QVError."""

    def __init__(self, path: str | os.PathLike[str], format: str | None = None,
                 cache: str = "writeback", readonly: bool = False,
                 discard: bool = False, force_share: bool = False) -> None:
        if format not in _FORMAT_CODES:
            raise QVError("QV_ERR_INVAL", f"unknown disk format '{format}'")
        if cache not in CACHE_MODES:
            raise QVError("QV_ERR_INVAL", f"unknown cache mode '{cache}'")
        self.path = str(path)
        opts = ffi.new("struct qv_disk_options *")
        opts.format = _FORMAT_CODES[format]
        opts.cache = CACHE_MODES[cache]
        opts.readonly = int(readonly)
        opts.discard = int(discard)
        opts.force_share = int(force_share)
        out = ffi.new("struct qv_disk **")
        err = ffi.new("char[512]")
        rc = lib.qv_disk_open(self.path.encode(), opts, out, err, len(err))
        if rc != 0:
            raise QVError(rc, c_string(err) or f"{self.path}: cannot open")
        self._disk = out[0]

    @property
    def size(self) -> int:
        return int(self._live().size)

    @property
    def format(self) -> str:
        return _FORMAT_NAMES.get(int(self._live().format), "unknown")

    @property
    def readonly(self) -> bool:
        return bool(self._live().readonly)

    def _live(self) -> object:
        if self._disk is None:
            raise QVError("QV_ERR_STATE", "the disk is closed", path=self.path)
        return self._disk

    def _check(self, rc: int) -> None:
        if rc != 0:
            msg = c_string(lib.qv_disk_last_error(self._disk)) if self._disk else ""
            raise QVError(rc, msg or None, path=None if self.path in msg else self.path)

    def _range(self, offset: int, length: int) -> object:
        """The live disk, after checking the arguments fit the C types."""
        if not (0 <= offset < 1 << 64 and 0 <= length < 1 << 63):
            raise QVError("QV_ERR_INVAL", f"invalid offset {offset} or length {length}",
                          path=self.path)
        return self._live()

    def read(self, offset: int, length: int) -> bytes:
        disk = self._range(offset, length)
        buf = ffi.new("uint8_t[]", max(length, 1))
        self._check(lib.qv_disk_read(disk, offset, buf, length))
        return bytes(ffi.buffer(buf, length))

    def readinto(self, offset: int, buffer: bytearray | memoryview) -> None:
        """Fill a writable buffer from offset (no allocation: for hot loops)."""
        view = memoryview(buffer)
        disk = self._range(offset, view.nbytes)
        self._check(lib.qv_disk_read(disk, offset, ffi.from_buffer(view), view.nbytes))

    def write(self, offset: int, data: bytes) -> None:
        disk = self._range(offset, len(data))
        self._check(lib.qv_disk_write(disk, offset, ffi.from_buffer(data), len(data)))

    def flush(self) -> None:
        self._check(lib.qv_disk_flush(self._live()))

    def discard(self, offset: int, length: int) -> None:
        self._check(lib.qv_disk_discard(self._range(offset, length), offset, length))

    def write_zeroes(self, offset: int, length: int) -> None:
        self._check(lib.qv_disk_write_zeroes(self._range(offset, length), offset, length))

    def close(self) -> None:
        if self._disk is not None:
            lib.qv_disk_close(self._disk)
            self._disk = None

    def __enter__(self) -> Disk:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_disk", None) is not None:
            self.close()


def open_disk(path: str | os.PathLike[str], format: str | None = None,
              cache: str = "writeback", readonly: bool = False, discard: bool = False,
              force_share: bool = False) -> Disk:
    """Open an image through the C block layer (format auto-detected when None).
    force_share (read-only only) skips the image lock, for inspecting an image in use."""
    return Disk(path, format=format, cache=cache, readonly=readonly, discard=discard,
                force_share=force_share)


def _detect(path: Path) -> str:
    with open(path, "rb") as f:
        return "qcow2" if f.read(4) == QCOW2_MAGIC else "raw"


def _resolve_backing(image: Path, backing: str) -> Path:
    p = Path(backing)
    return p if p.is_absolute() else image.parent / p


def _qcow2_image(size: int, backing: str | None, backing_format: str | None,
                 cluster_bits: int = DEFAULT_CLUSTER_BITS) -> bytes:
    """The metadata of an empty qcow2 v3 image: header, refcount table and block, L1 table."""
    cs = 1 << cluster_bits
    l2_entries = cs // 8
    per_l1 = cs * l2_entries
    l1_entries = -(-size // per_l1)
    if l1_entries * 8 > _MAX_L1_BYTES:
        raise QVError("QV_ERR_INVAL", f"size {size} needs an L1 table larger than 32 MiB")
    l1_clusters = max(1, -(-(l1_entries * 8) // cs))
    refs_per_block = cs * 8 // 16
    # header, refcount table, refcount blocks, L1: the refcount blocks must cover them all.
    rt_clusters, rb_clusters = 1, 1
    while True:
        total = 1 + rt_clusters + rb_clusters + l1_clusters
        need_rb = -(-total // refs_per_block)
        need_rt = max(1, -(-(need_rb * 8) // cs))
        if need_rb <= rb_clusters and need_rt <= rt_clusters:
            break
        rb_clusters, rt_clusters = max(rb_clusters, need_rb), max(rt_clusters, need_rt)
    rt_off = cs
    rb_off = rt_off + rt_clusters * cs
    l1_off = rb_off + rb_clusters * cs
    total = 1 + rt_clusters + rb_clusters + l1_clusters

    exts = b""
    if backing is not None and backing_format:
        fmt = backing_format.encode()
        padded = fmt.ljust(-(-len(fmt) // 8) * 8, b"\0")
        exts += struct.pack(">II", _EXT_BACKING_FORMAT, len(fmt)) + padded
    table = b"".join(struct.pack(">BB46s", t, b, n.encode()) for t, b, n in _FEATURE_NAMES)
    exts += struct.pack(">II", _EXT_FEATURE_TABLE, len(table)) + table
    exts += struct.pack(">II", 0, 0)
    header_len = 104
    backing_bytes = backing.encode() if backing is not None else b""
    backing_off = header_len + len(exts) if backing_bytes else 0
    if len(backing_bytes) > 1023 or backing_off + len(backing_bytes) > cs:
        raise QVError("QV_ERR_INVAL", "backing file name too long")
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQII",
        QCOW2_MAGIC, 3, backing_off, len(backing_bytes), cluster_bits, size, 0,
        l1_entries, l1_off, rt_off, rt_clusters, 0, 0, 0, 0, 0, 4, header_len,
    )
    first = (header + exts + backing_bytes).ljust(cs, b"\0")
    reftable = bytearray(rt_clusters * cs)
    for i in range(rb_clusters):
        struct.pack_into(">Q", reftable, 8 * i, rb_off + i * cs)
    blocks = bytearray(rb_clusters * cs)
    for c in range(total):
        struct.pack_into(">H", blocks, 2 * c, 1)
    return first + bytes(reftable) + bytes(blocks) + bytes(l1_clusters * cs)


def _write_zeros(fd: int, size: int, progress: ProgressCallback | None) -> None:
    """Full preallocation (qemu-img's preallocation=full): every byte written as zeros, so
    the space is really taken now and later writes cannot fail for lack of it."""
    zeros = bytes(PREALLOC_CHUNK)
    done = 0
    if progress:
        progress(0, size)
    while done < size:
        n = os.pwrite(fd, memoryview(zeros)[:min(PREALLOC_CHUNK, size - done)], done)
        done += n
        if progress:
            progress(done, size)


def create(path: str | os.PathLike[str], format: str, size: int | None,
           backing: str | None = None, *, preallocate: bool = False,
           progress: ProgressCallback | None = None) -> Path:
    """Create a new image (never overwrites). With a backing file, size defaults to its size.
    ``preallocate`` (raw only) writes every byte now, reporting to ``progress``; without it a
    raw image is sparse."""
    image = Path(path)
    if format not in FORMATS:
        raise QVError("QV_ERR_INVAL", f"unknown image format '{format}' (raw or qcow2)")
    if preallocate and format != "raw":
        raise QVError("QV_ERR_NOTSUP", "preallocation is supported for raw images (and the "
                      "encrypted format), not qcow2", path="preallocate")
    if backing is not None and format != "qcow2":
        raise QVError("QV_ERR_INVAL", "only qcow2 images can have a backing file")
    backing_format = None
    if backing is not None:
        with open_disk(_resolve_backing(image, backing), readonly=True) as b:
            backing_format = b.format
            if size is None:
                size = b.size
    if size is None or size <= 0:
        raise QVError("QV_ERR_INVAL", "the image size must be positive")
    if format == "qcow2":
        size = -(-size // 512) * 512
        if size > _MAX_QCOW2_SIZE:
            raise QVError("QV_ERR_INVAL", f"size {size} is too large for qcow2")
    if not image.parent.is_dir():
        raise QVError("QV_ERR_NOENT", f"directory {image.parent} does not exist")
    try:
        fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise QVError("QV_ERR_EXIST", f"{image} already exists") from None
    except OSError as err:
        raise QVError("QV_STR_ERR_IO", f"{image}: {err.strerror}") from None
    try:
        if format == "raw":
            os.ftruncate(fd, size)
            if preallocate:
                _write_zeros(fd, size, progress)
        else:
            data = _qcow2_image(size, backing, backing_format)
            os.write(fd, data)
        os.fsync(fd)
    except BaseException as err:  # also an interrupted preallocation: no half image stays
        os.close(fd)
        image.unlink(missing_ok=True)
        if not isinstance(err, OSError):
            raise
        code = "QV_STR_ERR_NOSPC" if err.errno == 28 else "QV_STR_ERR_IO"
        raise QVError(code, f"{image}: {err.strerror}") from None
    os.close(fd)
    return image


@dataclass(frozen=True)
class ImageInfo:
    path: str
    format: str
    virtual_size: int
    actual_size: int
    backing_file: str | None
    backing_format: str | None
    cluster_size: int | None
    version: int | None
    snapshots: int
    encrypted: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _qcow2_header_fields(path: Path) -> tuple[int, int, str | None, str | None, int]:
    """(version, cluster size, backing file, backing format, snapshots) of a qcow2 image the
    C layer has already validated."""
    with open(path, "rb") as f:
        head = f.read(104)
        version, boff, blen, cbits = struct.unpack_from(">IQII", head, 4)
        nb_snap = struct.unpack_from(">I", head, 60)[0]
        cs = 1 << cbits
        f.seek(0)
        first = f.read(cs)
    backing = first[boff:boff + blen].decode(errors="replace") if blen else None
    backing_format = None
    pos = struct.unpack_from(">I", first, 100)[0] if version >= 3 else 72
    while pos + 8 <= len(first):
        etype, elen = struct.unpack_from(">II", first, pos)
        if etype == 0:
            break
        if etype == _EXT_BACKING_FORMAT:
            backing_format = first[pos + 8:pos + 8 + elen].decode(errors="replace")
        pos += 8 + -(-elen // 8) * 8
    return version, cs, backing, backing_format, nb_snap


def info(path: str | os.PathLike[str]) -> dict[str, object]:
    """Format, virtual size, space used on the host, backing file, cluster size, encryption."""
    image = Path(path)
    if not image.exists():
        raise QVError("QV_ERR_NOENT", f"{image}: no such image")
    # Validates the whole header; force_share: an image in use by a VM can still be inspected.
    with open_disk(image, readonly=True, force_share=True) as disk:
        fmt, vsize = disk.format, disk.size
    st = image.stat()
    version = cs = backing = backing_format = None
    snapshots = 0
    if fmt == "qcow2":
        version, cs, backing, backing_format, snapshots = _qcow2_header_fields(image)
    return ImageInfo(
        path=str(image), format=fmt, virtual_size=vsize, actual_size=st.st_blocks * 512,
        backing_file=backing, backing_format=backing_format, cluster_size=cs, version=version,
        snapshots=snapshots, encrypted=False,
    ).to_dict()


def detect_format(path: str | os.PathLike[str]) -> str:
    """'qcow2' when the file starts with the qcow2 magic, else 'raw'."""
    return _detect(Path(path))
