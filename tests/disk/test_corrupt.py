"""Corrupt and hostile qcow2 images: always a QVError with a clear code, never a crash."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantavirt.errors import QVError
from quantavirt.storage import create, open_disk

CS = 65536


def _image(tmp_path: Path, name: str = "c.qcow2") -> Path:
    """A valid image from storage.create with a few allocated clusters."""
    image = create(tmp_path / name, "qcow2", 4 << 20)
    with open_disk(image) as disk:
        disk.write(0, b"\x01" * 1000)
        disk.write(CS * 3 + 17, b"\x02" * 5000)
    return image


def _patch(image: Path, offset: int, data: bytes) -> None:
    with open(image, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _l1(image: Path) -> tuple[int, int]:
    head = image.read_bytes()[:104]
    return struct.unpack_from(">I", head, 36)[0], struct.unpack_from(">Q", head, 40)[0]


def _l2_offset(image: Path) -> int:
    _, l1_off = _l1(image)
    entry = struct.unpack_from(">Q", image.read_bytes(), l1_off)[0]
    return entry & 0x00FFFFFFFFFFFE00


def _expect(image: Path, code: str, fragment: str, access: bool = False,
            readonly: bool = False) -> None:
    """Opening (or, with access, reading everything) fails with code and a message."""
    try:
        with open_disk(image, readonly=readonly) as disk:
            if not access:
                raise AssertionError("the corrupt image opened")
            disk.read(0, disk.size)
            disk.write(CS * 3, b"x" * 10)
    except QVError as err:
        assert err.name == code, err
        assert fragment in err.message, err.message
        return
    raise AssertionError("the corruption went unnoticed")


CASES: list[tuple[str, Callable[[Path], None], str, str, bool]] = [
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[:50]), "QV_STR_ERR_CORRUPT",
     "truncated", False),
    ("bad magic under format qcow2", lambda p: _patch(p, 0, b"QFI\x00"), "QV_STR_ERR_FORMAT",
     "magic", False),
    ("version 4", lambda p: _patch(p, 4, struct.pack(">I", 4)), "QV_STR_ERR_NOTSUP",
     "version", False),
    ("cluster_bits 30", lambda p: _patch(p, 20, struct.pack(">I", 30)), "QV_STR_ERR_CORRUPT",
     "cluster_bits", False),
    ("huge l1_size", lambda p: _patch(p, 36, struct.pack(">I", 0xFFFFFFF0)),
     "QV_STR_ERR_CORRUPT", "L1 table", False),
    ("l1 too small for size", lambda p: _patch(p, 24, struct.pack(">Q", 1 << 50)),
     "QV_STR_ERR_CORRUPT", "too small", False),
    ("L1 beyond EOF", lambda p: _patch(p, 40, struct.pack(">Q", 1 << 40)),
     "QV_STR_ERR_CORRUPT", "beyond the end", False),
    ("L1 unaligned", lambda p: _patch(p, 40, struct.pack(">Q", CS + 8)),
     "QV_STR_ERR_CORRUPT", "L1 table offset", False),
    ("refcount table garbage", lambda p: _patch(p, 48, struct.pack(">Q", 0xDEADBEEF12345)),
     "QV_STR_ERR_CORRUPT", "refcount table", False),
    ("refcount table entry beyond EOF", lambda p: _patch(p, CS, struct.pack(">Q", 1 << 45)),
     "QV_STR_ERR_CORRUPT", "refcount table entry", False),
    ("unknown incompatible feature", lambda p: _patch(p, 72, struct.pack(">Q", 1 << 9)),
     "QV_STR_ERR_NOTSUP", "incompatible", False),
    ("external data file", lambda p: _patch(p, 72, struct.pack(">Q", 1 << 2)),
     "QV_STR_ERR_NOTSUP", "external data file", False),
    ("corrupt bit", lambda p: _patch(p, 72, struct.pack(">Q", 2)), "QV_STR_ERR_CORRUPT",
     "marked corrupt", False),
    ("dirty bit", lambda p: _patch(p, 72, struct.pack(">Q", 1)), "QV_STR_ERR_CORRUPT",
     "dirty", False),
    ("encrypted", lambda p: _patch(p, 32, struct.pack(">I", 1)), "QV_STR_ERR_NOTSUP",
     "encryption", False),
    ("refcount order 7", lambda p: _patch(p, 96, struct.pack(">I", 7)), "QV_STR_ERR_CORRUPT",
     "refcount_order", False),
    ("header length odd", lambda p: _patch(p, 100, struct.pack(">I", 101)),
     "QV_STR_ERR_CORRUPT", "header_length", False),
    ("extension too long", lambda p: _patch(p, 104, struct.pack(">II", 0x1234, 1 << 30)),
     "QV_STR_ERR_CORRUPT", "extension", False),
    ("backing name out of cluster", lambda p: _patch(p, 8, struct.pack(">QI", CS - 4, 100)),
     "QV_STR_ERR_CORRUPT", "backing file name", False),
    ("L1 entry beyond EOF",
     lambda p: _patch(p, _l1(p)[1], struct.pack(">Q", (1 << 63) | (1 << 40))),
     "QV_STR_ERR_CORRUPT", "beyond the end of the file", True),
    ("L1 entry onto the L1 table",
     lambda p: _patch(p, _l1(p)[1], struct.pack(">Q", (1 << 63) | _l1(p)[1])),
     "QV_STR_ERR_CORRUPT", "L1 or refcount table", True),
    ("L2 entry beyond EOF",
     lambda p: _patch(p, _l2_offset(p), struct.pack(">Q", (1 << 63) | (1 << 44))),
     "QV_STR_ERR_CORRUPT", "beyond the end of the file", True),
    ("L2 entry unaligned",
     lambda p: _patch(p, _l2_offset(p), struct.pack(">Q", (1 << 63) | (CS * 4 + 512))),
     "QV_STR_ERR_CORRUPT", "not cluster-aligned", True),
    ("L2 entry into the refcount table",
     lambda p: _patch(p, _l2_offset(p), struct.pack(">Q", (1 << 63) | CS)),
     "QV_STR_ERR_CORRUPT", "refcount table", True),
    ("L2 reserved bits", lambda p: _patch(p, _l2_offset(p), struct.pack(">Q", 0x1E)),
     "QV_STR_ERR_CORRUPT", "reserved bits", True),
]


@pytest.mark.parametrize(("mutate", "code", "fragment", "access"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_corruption_detected(tmp_path: Path, mutate: Callable[[Path], None], code: str,
                             fragment: str, access: bool) -> None:
    image = _image(tmp_path)
    mutate(image)
    if code == "QV_STR_ERR_FORMAT":  # bad magic: only an error when qcow2 was asked for
        with pytest.raises(QVError) as err:
            open_disk(image, format="qcow2")
        assert err.value.name == code and fragment in err.value.message
        return
    _expect(image, code, fragment, access=access)


def test_corrupt_bit_allows_read_only(tmp_path: Path) -> None:
    image = _image(tmp_path)
    _patch(image, 72, struct.pack(">Q", 2))
    with open_disk(image, readonly=True) as disk:
        assert disk.read(0, 1000) == b"\x01" * 1000


def test_unknown_feature_named_from_table(tmp_path: Path) -> None:
    """The error names the feature when the image's feature table does (storage.create
    writes one; bit 4 is 'extended L2 entries')."""
    image = _image(tmp_path)
    _patch(image, 72, struct.pack(">Q", 1 << 4))
    _expect(image, "QV_STR_ERR_NOTSUP", "extended L2 entries")


def test_data_cluster_onto_metadata_is_never_written(tmp_path: Path) -> None:
    """An L2 entry pointing at its own L2 table (or a refcount block): reads return bytes, a
    write is refused, and the metadata is untouched."""
    image = _image(tmp_path)
    l2 = _l2_offset(image)
    rb = struct.unpack_from(">Q", image.read_bytes(), CS)[0]
    _patch(image, l2 + 8, struct.pack(">Q", (1 << 63) | l2))
    _patch(image, l2 + 16, struct.pack(">Q", (1 << 63) | rb))
    before = image.read_bytes()
    with open_disk(image) as disk:
        assert len(disk.read(CS, 2 * CS)) == 2 * CS
        for guest in (CS, 2 * CS):
            with pytest.raises(QVError) as err:
                disk.write(guest + 10, b"overwrite metadata" * 10)
            assert err.value.name == "QV_STR_ERR_CORRUPT" and "metadata" in err.value.message
    assert image.read_bytes() == before


_VALID: dict[str, bytes] = {}


def _valid_image_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if "img" not in _VALID:
        _VALID["img"] = _image(tmp_path_factory.mktemp("valid")).read_bytes()
    return _VALID["img"]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1,
                max_size=8),
       st.sampled_from(["header", "l1", "refcount", "l2"]))
def test_mutated_images_never_crash(tmp_path_factory: pytest.TempPathFactory,
                                    edits: list[tuple[int, int]], region: str) -> None:
    data = bytearray(_valid_image_bytes(tmp_path_factory))
    base = {"header": 0, "refcount": CS, "l1": _l1_offset_of(data),
            "l2": _l2_of(data)}[region]
    for off, value in edits:
        data[base + (off % (112 if region == "header" else 4096))] = value
    path = tmp_path_factory.mktemp("mut") / "m.qcow2"
    path.write_bytes(bytes(data))
    for readonly in (True, False):
        try:
            with open_disk(path, readonly=readonly) as disk:
                disk.read(0, min(disk.size, 1 << 20))
                if not readonly:
                    disk.write(CS * 3, b"z" * 100)
                    disk.write_zeroes(0, CS)
                    disk.flush()
        except QVError as err:
            assert err.code <= -1 and err.message
    path.unlink()


def _l1_offset_of(data: bytes) -> int:
    return struct.unpack_from(">Q", data, 40)[0]


def _l2_of(data: bytes) -> int:
    return struct.unpack_from(">Q", data, _l1_offset_of(data))[0] & 0x00FFFFFFFFFFFE00


def test_truncation_sweep(tmp_path: Path) -> None:
    """Cut the image at every structure boundary: opening fails while metadata is missing,
    and afterwards accesses to lost clusters fail cleanly (or read what is left)."""
    full = _image(tmp_path, "full.qcow2").read_bytes()
    l1_off = _l1(tmp_path / "full.qcow2")[1]
    for cut in (0, 3, 71, 103, 4096, CS, CS + 8, 2 * CS, 3 * CS + 100, l1_off, l1_off + 8,
                len(full) - CS, len(full) - 1):
        path = tmp_path / f"cut{cut}.qcow2"
        path.write_bytes(full[:cut])
        try:
            with open_disk(path, format="qcow2") as disk:
                assert cut > l1_off  # the tables were all there
                for off in range(0, disk.size, CS):
                    try:
                        disk.read(off, CS)
                    except QVError as err:
                        assert err.name == "QV_STR_ERR_CORRUPT", err
        except QVError as err:
            assert err.name in ("QV_STR_ERR_CORRUPT", "QV_STR_ERR_FORMAT"), err
            assert cut <= l1_off + 8 or cut < 4 * CS
