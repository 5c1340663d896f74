"""Round trips through the C data path against an in-memory model."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from quantavirt import encrypted_storage as es
from quantavirt.errors import QVError

SECTOR = 4096


@pytest.mark.parametrize("aead", ["AES-256-GCM", "ChaCha20-Poly1305"])
def test_random_pattern_matches_model(make_image, aead: str) -> None:
    size = 1 << 20
    path = make_image(size, aead=aead)
    model = bytearray(size)
    rng = random.Random(f"roundtrip-{aead}")
    with es.EncryptedDisk.open(path) as disk:
        assert disk.size == size
        for step in range(600):
            kind = rng.random()
            if kind < 0.35:  # 512-byte guest writes, often inside one 4K sector
                off = rng.randrange(size // 512) * 512
                n = 512 * rng.randint(1, 3)
            elif kind < 0.55:  # byte-granular, unaligned
                off = rng.randrange(size)
                n = rng.randint(1, 10000)
            elif kind < 0.75:  # large, crosses the 64-sector chunk boundary
                off = rng.randrange(size // 512) * 512
                n = rng.randint(1, 96) * 4096 + rng.choice([0, 512, 1000])
            else:
                off = rng.randrange(size)
                n = rng.randint(0, 300_000)
            n = min(n, size - off)
            if step % 3 == 0:
                data = rng.randbytes(n)
                disk.write(off, data)
                model[off:off + n] = data
            elif step % 3 == 1:
                assert disk.read(off, n) == bytes(model[off:off + n])
            else:
                disk.write_zeroes(off, n)
                model[off:off + n] = bytes(n)
        assert disk.read(0, size) == bytes(model)
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        assert disk.read(0, size) == bytes(model)


def test_unwritten_reads_zero_and_partial_last_sector(make_image) -> None:
    size = 3 * SECTOR + 1536  # the last sealed sector is only partly inside the disk
    path = make_image(size)
    with es.EncryptedDisk.open(path) as disk:
        assert disk.read(0, size) == bytes(size)
        disk.write(size - 512, b"\x7f" * 512)
        disk.write(3 * SECTOR, b"\x01" * 512)
        assert disk.read(3 * SECTOR, 1536) == b"\x01" * 512 + bytes(512) + b"\x7f" * 512


def test_bounds_and_readonly(make_image) -> None:
    path = make_image(1 << 16)
    with es.EncryptedDisk.open(path) as disk:
        for off, n in ((1 << 16, 1), ((1 << 16) - 10, 11), (2**63, 1)):
            with pytest.raises(QVError) as err:
                disk.read(off, n)
            assert err.value.name == "QV_STR_ERR_RANGE"
        disk.read(1 << 16, 0)
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        with pytest.raises(QVError) as err:
            disk.write(0, b"x")
        assert err.value.name == "QV_STR_ERR_READONLY"
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_pattern_never_in_plaintext(make_image) -> None:
    size = 4 << 20
    path = make_image(size)
    pattern = b"QUANTAVIRT-SECRET-PATTERN-" + bytes(range(38))  # 64 bytes
    block = pattern * (SECTOR // len(pattern))
    with es.EncryptedDisk.open(path) as disk:
        for i in range(size // SECTOR):
            disk.write(i * SECTOR, block)
        disk.write(12345, pattern)  # unaligned copy as well
        disk.flush()
        assert disk.read(12345, len(pattern)) == pattern
    raw = path.read_bytes()
    for needle in (pattern, pattern[:16], pattern[26:42]):
        assert raw.find(needle) == -1
    # The data area looks random: every byte value occurs, none dominates.
    counts = [0] * 256
    for b in raw[-SECTOR * 64:]:
        counts[b] += 1
    assert min(counts) > 0 and max(counts) < 3 * (SECTOR * 64 // 256)


def test_fresh_process_reads_identical(make_image, store, tmp_path: Path) -> None:
    size = 2 << 20
    path = make_image(size)
    rng = random.Random(7)
    data = rng.randbytes(size)
    with es.EncryptedDisk.open(path) as disk:
        for off in range(0, size, 300_000):
            disk.write(off, data[off:off + 300_000])
    expected = tmp_path / "expected.bin"
    expected.write_bytes(data)
    out = tmp_path / "readback.bin"
    code = (
        "import sys\n"
        "from quantavirt import encrypted_storage as es\n"
        "from quantavirt.keys import KeyStore\n"
        "store = KeyStore(sys.argv[3])\n"
        "d = es.EncryptedDisk.open(sys.argv[1], 'host', readonly=True, store=store)\n"
        "open(sys.argv[2], 'wb').write(d.read(0, d.size))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(out), str(store.home)],
                   check=True, timeout=60)
    assert out.read_bytes() == expected.read_bytes()


def test_image_locked_while_open(make_image) -> None:
    path = make_image(1 << 16)
    with es.EncryptedDisk.open(path):
        with pytest.raises(QVError) as err:
            es.EncryptedDisk.open(path)
        assert err.value.name == "QV_ERR_BUSY"


def test_preallocated_image(make_image) -> None:
    path = make_image(1 << 18, preallocate=True)
    info = es.info(path)
    assert info["preallocated"] and info["actual_size"] >= 1 << 18
    with es.EncryptedDisk.open(path) as disk:
        assert disk.read(0, 1 << 18) == bytes(1 << 18)


def test_create_rejects_bad_input(store, tmp_path: Path) -> None:
    cases = [
        (dict(size=1000), "QV_ERR_INVAL"),
        (dict(size=0), "QV_ERR_INVAL"),
        (dict(size="12Q"), "QV_ERR_INVAL"),
        (dict(size=4096, aead="AES-128-CBC"), "PQC_ERR_ALGORITHM"),
        (dict(size=4096, kem="ML-KEM-1024"), "PQC_ERR_ALGORITHM"),  # host key is 768
        (dict(size=4096, key_name="nobody"), "QV_ERR_NOENT"),
    ]
    for kwargs, name in cases:
        with pytest.raises(QVError) as err:
            es.create(tmp_path / "x.img", **{"key_name": "host", **kwargs}, store=store)
        assert err.value.name == name, kwargs
        assert not (tmp_path / "x.img").exists()
    es.create(tmp_path / "x.img", 4096, key_name="host", store=store)
    with pytest.raises(QVError) as err:
        es.create(tmp_path / "x.img", 4096, key_name="host", store=store)
    assert err.value.name == "QV_ERR_EXIST"


@pytest.mark.parametrize("cache", ["writeback", "none", "writethrough", "directsync"])
def test_cache_modes(make_image, cache: str) -> None:
    path = make_image(1 << 16)
    data = random.Random(cache).randbytes(3 * SECTOR + 700)
    with es.EncryptedDisk.open(path, cache=cache) as disk:
        disk.write(1000, data)
        disk.flush()
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        assert disk.read(1000, len(data)) == data
    with pytest.raises(QVError) as err:
        es.EncryptedDisk.open(path, cache="unsafe")
    assert err.value.name == "QV_ERR_INVAL"


def test_default_aead_follows_aes_ni(store, tmp_path: Path) -> None:
    with_aes = "processor : 0\nflags\t\t: fpu sse2 aes avx2\n"
    without = "processor : 0\nflags\t\t: fpu sse2 avx2\n"
    assert es.default_aead(with_aes) == "AES-256-GCM"
    assert es.default_aead(without) == "ChaCha20-Poly1305"
    info = es.create(tmp_path / "d.qvenc", 1 << 16, key_name="host", store=store)
    assert info["aead"] == es.default_aead()
