"""Changes to a stored image: every one is detected, and reported for the right sector."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from quantavirt import encrypted_storage as es
from quantavirt.errors import QVError

SECTOR = 4096
META_OFFSET = 8192
RECORD = 64
SLOT = 28


def data_offset(virtual_size: int) -> int:
    nsectors = (virtual_size + SECTOR - 1) // SECTOR
    return META_OFFSET + (nsectors * RECORD + SECTOR - 1) // SECTOR * SECTOR


def flip(path: Path, offset: int, bit: int) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        b = os.pread(fd, 1, offset)
        os.pwrite(fd, bytes([b[0] ^ (1 << bit)]), offset)
    finally:
        os.close(fd)


def pread(path: Path, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


def pwrite(path: Path, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def sector_blob(path: Path, size: int, i: int) -> tuple[bytes, bytes]:
    return (pread(path, data_offset(size) + i * SECTOR, SECTOR),
            pread(path, META_OFFSET + i * RECORD, RECORD))


def put_sector_blob(path: Path, size: int, i: int, blob: tuple[bytes, bytes]) -> None:
    pwrite(path, data_offset(size) + i * SECTOR, blob[0])
    pwrite(path, META_OFFSET + i * RECORD, blob[1])


def filled_image(make_image, size: int, aead: str = "AES-256-GCM") -> tuple[Path, list[bytes]]:
    path = make_image(size, aead=aead)
    rng = random.Random(size)
    contents = [rng.randbytes(SECTOR) for _ in range(size // SECTOR)]
    with es.EncryptedDisk.open(path) as disk:
        for i, c in enumerate(contents):
            disk.write(i * SECTOR, c)
        # Second versions: their entries sit in the other record slot.
        for i in range(1, len(contents), 2):
            disk.write(i * SECTOR, contents[i])
    return path, contents


def assert_only_sector_fails(path: Path, contents: list[bytes], bad: int) -> None:
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        with pytest.raises(QVError) as err:
            disk.read(bad * SECTOR + 512, 512)
        assert err.value.name == "QV_STR_ERR_INTEGRITY"
        assert f"sector {bad} " in err.value.message, err.value.message
        assert f"sector {bad} " in disk.last_error
        for j in {0, bad - 1, bad + 1, len(contents) - 1} - {bad}:
            if 0 <= j < len(contents):
                assert disk.read(j * SECTOR, SECTOR) == contents[j]


@pytest.mark.parametrize("aead", ["AES-256-GCM", "ChaCha20-Poly1305"])
def test_bit_flips_in_every_sector(make_image, aead: str) -> None:
    size = 16 * SECTOR
    path, contents = filled_image(make_image, size, aead)
    rng = random.Random(aead)
    doff = data_offset(size)
    for i in range(size // SECTOR):
        rec = pread(path, META_OFFSET + i * RECORD, RECORD)
        used = 0 if any(rec[0:SLOT]) else 1
        spots = [
            doff + i * SECTOR,                                  # first ciphertext byte
            doff + i * SECTOR + SECTOR - 1,                     # last ciphertext byte
            doff + i * SECTOR + rng.randrange(SECTOR),          # any ciphertext byte
            META_OFFSET + i * RECORD + used * SLOT + rng.randrange(12),        # stamp (nonce)
            META_OFFSET + i * RECORD + used * SLOT + 12 + rng.randrange(16),   # tag
            META_OFFSET + i * RECORD + (1 - used) * SLOT + rng.randrange(SLOT),  # empty slot
            META_OFFSET + i * RECORD + 56 + rng.randrange(8),   # record check
        ]
        for off in spots:
            bit = rng.randrange(8)
            flip(path, off, bit)
            assert_only_sector_fails(path, contents, i)
            flip(path, off, bit)
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        assert disk.read(0, size) == b"".join(contents)


def test_every_bit_of_one_sector_record(make_image) -> None:
    size = 4 * SECTOR
    path, contents = filled_image(make_image, size)
    for byte in range(RECORD):
        for bit in range(8):
            flip(path, META_OFFSET + 2 * RECORD + byte, bit)
            with es.EncryptedDisk.open(path, readonly=True) as disk:
                with pytest.raises(QVError) as err:
                    disk.read(2 * SECTOR, SECTOR)
                assert err.value.name == "QV_STR_ERR_INTEGRITY"
            flip(path, META_OFFSET + 2 * RECORD + byte, bit)


def test_writing_a_damaged_sector_repairs_it(make_image) -> None:
    size = 4 * SECTOR
    path, contents = filled_image(make_image, size)
    flip(path, data_offset(size) + SECTOR + 100, 3)
    with es.EncryptedDisk.open(path) as disk:
        with pytest.raises(QVError):
            disk.read(SECTOR, 512)
        with pytest.raises(QVError):  # a partial write needs the old content: refused
            disk.write(SECTOR, b"y" * 512)
        disk.write(SECTOR, b"z" * SECTOR)
        assert disk.read(SECTOR, SECTOR) == b"z" * SECTOR


def test_header_bit_flips_refused_at_open(make_image) -> None:
    path = make_image(8 * SECTOR)
    with es.EncryptedDisk.open(path) as disk:
        disk.write(0, b"a" * SECTOR)
    rng = random.Random(1)
    # Every byte of the used header part, the zero padding sampled, the MAC, the epoch block.
    offsets = list(range(0, 1824)) + rng.sample(range(1824, 4064), 150) + list(range(4064, 4096))
    offsets += list(range(4096, 4112)) + rng.sample(range(4112, 8160), 60)
    offsets += list(range(8160, 8192))
    names = set()
    for off in offsets:
        bit = off % 8
        flip(path, off, bit)
        with pytest.raises(QVError) as err:
            es.EncryptedDisk.open(path, readonly=True).close()
        names.add(err.value.name)
        assert err.value.name in {"QV_STR_ERR_INTEGRITY", "QV_STR_ERR_CORRUPT",
                                  "QV_STR_ERR_NOTSUP", "QV_STR_ERR_FORMAT", "PQC_ERR_KEY"}
        flip(path, off, bit)
    assert "QV_STR_ERR_INTEGRITY" in names
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        assert disk.read(0, SECTOR) == b"a" * SECTOR


def test_wrong_key(make_image, store) -> None:
    path = make_image(1 << 16)
    for key in ("other", "big", "small"):
        with pytest.raises(QVError) as err:
            es.EncryptedDisk.open(path, key, store=store)
        assert err.value.name == "PQC_ERR_KEY"
        assert err.value.path == str(path)
    # A secret key of the right size and fingerprint field but otherwise wrong is refused too.
    _, sk = store.load_secret_key("host")
    forged = bytearray(sk)
    forged[0] ^= 1
    with pytest.raises(QVError) as err:
        es.EncryptedDisk.open(path, secret_key=forged)
    assert err.value.name in {"PQC_ERR_KEY", "QV_STR_ERR_INTEGRITY"}
    with pytest.raises(QVError) as err:
        es.EncryptedDisk.open(path, secret_key=b"short")
    assert err.value.name == "PQC_ERR_KEY"


def test_sector_swap_and_copy_detected(make_image) -> None:
    size = 8 * SECTOR
    path, contents = filled_image(make_image, size)
    a, b = sector_blob(path, size, 2), sector_blob(path, size, 6)
    # data only swapped
    pwrite(path, data_offset(size) + 2 * SECTOR, b[0])
    pwrite(path, data_offset(size) + 6 * SECTOR, a[0])
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        for i in (2, 6):
            with pytest.raises(QVError, match=f"sector {i} "):
                disk.read(i * SECTOR, SECTOR)
    # data and record swapped together
    put_sector_blob(path, size, 2, b)
    put_sector_blob(path, size, 6, a)
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        for i in (2, 6):
            with pytest.raises(QVError, match=f"sector {i} "):
                disk.read(i * SECTOR, SECTOR)
        assert disk.read(3 * SECTOR, SECTOR) == contents[3]
    put_sector_blob(path, size, 2, a)
    put_sector_blob(path, size, 6, b)
    # copied from another image (same key, same position): the image UUID differs
    other, _ = filled_image(make_image, size)
    put_sector_blob(path, size, 4, sector_blob(other, size, 4))
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        with pytest.raises(QVError, match="sector 4 "):
            disk.read(4 * SECTOR, SECTOR)
        assert disk.read(0, 4 * SECTOR) == b"".join(contents[:4])


def test_replay_statement(make_image) -> None:
    """What the format document says about replays of the same sector, checked."""
    size = 8 * SECTOR
    path, contents = filled_image(make_image, size)
    old = sector_blob(path, size, 3)
    with es.EncryptedDisk.open(path) as disk:
        disk.write(3 * SECTOR, b"N" * SECTOR)
    new = sector_blob(path, size, 3)
    # Old data under the new record, or the old record over the new data: detected.
    for mixed in ((old[0], new[1]), (new[0], old[1])):
        put_sector_blob(path, size, 3, mixed)
        with es.EncryptedDisk.open(path, readonly=True) as disk:
            with pytest.raises(QVError, match="sector 3 "):
                disk.read(3 * SECTOR, SECTOR)
    # The complete old version (data and record together): NOT detected, as documented.
    put_sector_blob(path, size, 3, old)
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        assert disk.read(3 * SECTOR, SECTOR) == contents[3]


def test_erased_record_detected_only_when_preallocated(make_image) -> None:
    for prealloc in (False, True):
        path = make_image(4 * SECTOR, preallocate=prealloc)
        with es.EncryptedDisk.open(path) as disk:
            disk.write(SECTOR, b"q" * SECTOR)
        pwrite(path, META_OFFSET + RECORD, bytes(RECORD))
        with es.EncryptedDisk.open(path, readonly=True) as disk:
            if prealloc:
                with pytest.raises(QVError, match="sector 1 .*erased"):
                    disk.read(SECTOR, SECTOR)
            else:  # documented: reads as never written
                assert disk.read(SECTOR, SECTOR) == bytes(SECTOR)


def test_truncated_and_foreign_files(make_image, tmp_path: Path) -> None:
    path = make_image(16 * SECTOR)
    os.truncate(path, os.path.getsize(path) - 1)
    with pytest.raises(QVError) as err:
        es.EncryptedDisk.open(path)
    assert err.value.name == "QV_STR_ERR_CORRUPT"
    for content, name in ((b"", "QV_STR_ERR_FORMAT"), (b"QVENCDSK", "QV_STR_ERR_CORRUPT"),
                          (b"\0" * 8192, "QV_STR_ERR_FORMAT")):
        p = tmp_path / "foreign.img"
        p.write_bytes(content)
        with pytest.raises(QVError) as err:
            es.EncryptedDisk.open(p, "host")
        assert err.value.name == name
    with pytest.raises(QVError) as err:
        es.EncryptedDisk.open(tmp_path / "missing.img", "host")
    assert err.value.name == "QV_ERR_NOENT"


def test_hostile_header_values(make_image) -> None:
    """Impossible header values are refused before any use (no crash, a clear code)."""
    path = make_image(16 * SECTOR)
    good = pread(path, 0, 4096)
    cases = {
        8: (2).to_bytes(4, "little"),             # version
        12: (512).to_bytes(4, "little"),          # header size
        16: (1 << 40).to_bytes(8, "little"),      # unknown flag
        40: (999).to_bytes(2, "little"),          # KEM
        42: (9).to_bytes(2, "little"),            # AEAD
        44: (512).to_bytes(4, "little"),          # sector size
        48: (2**64 - 512).to_bytes(8, "little"),  # virtual size
        56: (5000).to_bytes(4, "little"),         # KEM ciphertext length
    }
    for off, value in cases.items():
        pwrite(path, off, value)
        with pytest.raises(QVError) as err:
            es.EncryptedDisk.open(path, readonly=True)
        assert err.value.name in {"QV_STR_ERR_CORRUPT", "QV_STR_ERR_NOTSUP"}, off
        pwrite(path, 0, good)
    # a consistent but larger virtual size fails the header MAC
    pwrite(path, 48, (32 * SECTOR).to_bytes(8, "little"))
    with pytest.raises(QVError) as err:
        es.EncryptedDisk.open(path, readonly=True)
    assert err.value.name in {"QV_STR_ERR_INTEGRITY", "QV_STR_ERR_CORRUPT"}
