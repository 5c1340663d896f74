"""Encrypted disks under a running guest, through the wiring users use: a JSON configuration
(storage[].encrypted, pqc.storage_encryption) loaded like `quantavirt launch` loads it, the VM
class, virtio-blk, and the freestanding virtio test guest of tests/pci (mode 3: it writes
blocks of readable text, reads them back, then reads a range of blocks and records each
read's virtio status and an FNV-1a hash of the data in its memory).

- What the guest writes is never in the image file in plaintext; the guest reads it back
  through the VMM; a fresh process holding the host key reads the same bytes.
- pqc.storage_encryption.enabled makes every disk of the VM encrypted (a plain image is
  refused, naming the disk); a missing, swapped or damaged host key is an error at start
  naming the disk; the VM leaves no image locked after a failed start.
- A flipped bit in a sector (data or record) makes exactly the guest's read of that sector
  fail with VIRTIO_BLK_S_IOERR, the host log (the VMM's stderr) names the sector, and every
  other sector still reads right; a flipped header bit is refused at start.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from quantavirt import encrypted_storage as es
from quantavirt.config import load_file
from quantavirt.engine import ExitInfo
from quantavirt.errors import QVError
from quantavirt.keys import KeyStore
from quantavirt.vm import VM

pytestmark = pytest.mark.kvm

IMAGE_SIZE = 8 << 20
NSECTORS = IMAGE_SIZE // 4096
RECORDS_OFF = 8192
DATA_OFF = 8192 + (64 * NSECTORS + 4095) // 4096 * 4096
BLOCK = 4096
BLOCK_RESULTS = 0x8000
VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR = 0, 1


def pattern_text(block: int) -> bytes:
    """What the guest's pattern_text() writes into one 4 KiB block."""
    lines = []
    for line in range(64):
        head = f"QVGUEST plaintext block={block:08x} line={line:02x} ".encode()
        lines.append(head.ljust(63, b".") + b"\n")
    return b"".join(lines)


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


ZERO_HASH = fnv1a(bytes(BLOCK))


@dataclass
class GuestResult:
    exit: ExitInfo
    results: list[int]
    blocks: list[tuple[int, int]]       # (virtio status, FNV-1a of the data) per probed block
    disks: list[dict[str, Any]]


def vm_config(tmp: Path, storage: list[dict[str, Any]], pqc: dict[str, Any]) -> dict[str, Any]:
    """The effective configuration of a JSON file, as `quantavirt launch` loads it."""
    path = tmp / "vm.json"
    path.write_text(json.dumps({"name": "encdisk-guest", "cpu": {"count": 1},
                                "memory": {"size": "128M"}, "storage": storage,
                                "console": {"type": "serial"}, "pqc": pqc}))
    return load_file(str(path))


def run_guest(guest: bytes, config: dict[str, Any], *, write_first: int = 0,
              write_blocks: int = 0, read_first: int = 0, read_blocks: int = 0,
              log: Path | None = None) -> GuestResult:
    """Mode 3 of the guest on storage[0]; sectors are 512-byte units, blocks 4 KiB."""
    with VM(config, flat_binary=guest, log_path=str(log) if log else None) as vm:
        vm.machine.write_phys(0x7000, struct.pack("<5I", 3, write_first, write_blocks,
                                                  read_first, read_blocks))
        vm.start()
        ex = vm.wait(120)
        if ex is None:
            vm.stop()
            pytest.fail(f"the guest ran longer than 120 s: {vm.stats().results}")
        raw = vm.machine.read_phys(BLOCK_RESULTS, 8 * read_blocks)
        blocks = [struct.unpack_from("<II", raw, 8 * i) for i in range(read_blocks)]
        stats = vm.stats()
        return GuestResult(ex, list(stats.results), blocks, stats.disks)


def check_ok(r: GuestResult, write_blocks: int, read_blocks: int) -> None:
    assert r.exit.reason == "debug-exit", (r.exit, r.results)
    assert r.exit.status == 0, f"guest check {r.exit.status} failed; results {r.results}"
    assert r.results[-2:] == [0x3000 | write_blocks, 0x4000 | read_blocks], r.results


def fresh_process_read(home: Path, image: Path, offset: int, length: int) -> bytes:
    """Read the image in a new process that has only the host key store (found by the
    fingerprint in the header)."""
    code = ("import sys\nfrom quantavirt import encrypted_storage as es\n"
            f"with es.EncryptedDisk.open({str(image)!r}, readonly=True) as d:\n"
            f"    sys.stdout.buffer.write(d.read({offset}, {length}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                         env=dict(os.environ, QUANTAVIRT_HOME=str(home)))
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout


def assert_no_plaintext(image: Path, blocks: int) -> None:
    data = image.read_bytes()
    assert data.find(b"QVGUEST") == -1 and data.find(b"plaintext block=") == -1
    for b in range(blocks):
        text = pattern_text(b)
        for line in range(0, BLOCK, 64 * 16):  # every 16th line (each line is unique)
            assert data.find(text[line:line + 64]) == -1


@pytest.mark.parametrize("aead", ["AES-256-GCM", "ChaCha20-Poly1305"])
def test_guest_writes_never_reach_the_file_in_plaintext(virtio_guest, store: KeyStore,
                                                        home: Path, tmp_path: Path,
                                                        aead: str) -> None:
    image = tmp_path / "disk.qvenc"
    es.create(image, IMAGE_SIZE, None, aead, "host", store=store)
    config = vm_config(tmp_path, [{"path": str(image), "format": "encrypted", "discard": True,
                                   "encrypted": {"kem": "ML-KEM-768", "aead": aead}}],
                       {"enabled": True})
    assert config["storage"][0]["encrypted"] == {"kem": "ML-KEM-768", "aead": aead}
    wfirst, nw = 2048, 48                     # 192 KiB from 1 MiB on
    rfirst, nr = wfirst - 8 * 4, 48 + 8      # four unwritten blocks on each side
    r = run_guest(virtio_guest, config, write_first=wfirst, write_blocks=nw,
                  read_first=rfirst, read_blocks=nr)
    check_ok(r, nw, nr)
    expected = [ZERO_HASH] * 4 + [fnv1a(pattern_text(b)) for b in range(nw)] + [ZERO_HASH] * 4
    assert r.blocks == [(VIRTIO_BLK_S_OK, h) for h in expected]
    disk = r.disks[0]
    assert disk["wr_ops"] == nw and disk["wr_bytes"] == nw * BLOCK and disk["flush_ops"] == 1
    assert disk["rd_ops"] == nw + nr and disk["io_errors"] == 0
    assert_no_plaintext(image, nw)
    # the plaintext is all there for the key holder, in a fresh process
    back = fresh_process_read(home, image, wfirst * 512, nw * BLOCK)
    assert back == b"".join(pattern_text(b) for b in range(nw))
    assert fresh_process_read(home, image, 0, wfirst * 512) == bytes(wfirst * 512)


def test_pqc_storage_encryption_encrypts_every_disk(virtio_guest, store: KeyStore, home: Path,
                                                    tmp_path: Path) -> None:
    first, second = tmp_path / "a.qvenc", tmp_path / "b.qvenc"
    es.create(first, IMAGE_SIZE, None, "ChaCha20-Poly1305", "big", store=store)
    es.create(second, 1 << 20, None, "AES-256-GCM", "small", store=store)
    pqc = {"enabled": True, "storage_encryption": {"enabled": True, "kem": "ML-KEM-1024",
                                                   "aead": "ChaCha20-Poly1305"}}
    # no format and no encrypted object on the entries: the VM-wide default applies
    storage: list[dict[str, Any]] = [{"path": str(first), "discard": True},
                                     {"path": str(second)}]
    config = vm_config(tmp_path, storage, pqc)
    with VM(config, flat_binary=virtio_guest) as vm:
        assert [type(d.handle) for d in vm.devices.disks] == [es.EncryptedDisk] * 2
    r = run_guest(virtio_guest, config, write_first=64, write_blocks=16, read_first=64,
                  read_blocks=16)
    check_ok(r, 16, 16)
    assert r.blocks == [(VIRTIO_BLK_S_OK, fnv1a(pattern_text(b))) for b in range(16)]
    assert_no_plaintext(first, 16)
    assert fresh_process_read(home, first, 64 * 512, 16 * BLOCK) == \
        b"".join(pattern_text(b) for b in range(16))

    # a plain image among them is refused at start, naming the disk
    plain = tmp_path / "plain.raw"
    plain.write_bytes(pattern_text(0) * 16)
    with pytest.raises(QVError) as err:
        VM(vm_config(tmp_path, [*storage, {"path": str(plain)}], pqc), flat_binary=virtio_guest)
    assert err.value.name == "QV_STR_ERR_FORMAT" and err.value.path == "storage[2]"
    assert str(plain) in err.value.message

    # the host key of storage[1]: swapped for another key's secret, damaged, then gone
    key_file = store.dir / "small.key"
    good = key_file.read_bytes()
    other = KeyStore(home).create("small2", "ML-KEM-512")
    assert other.kem == "ML-KEM-512"
    for damaged, code in [((store.dir / "small2.key").read_bytes(), "PQC_ERR_KEY"),
                          (good[:100] + bytes([good[100] ^ 4]) + good[101:], "PQC_ERR_KEY")]:
        key_file.write_bytes(damaged)
        with pytest.raises(QVError) as err:
            VM(config, flat_binary=virtio_guest)
        assert err.value.name == code and err.value.path == "storage[1]", err.value
        assert str(second) in err.value.message and "small" in err.value.message
    for suffix in ("json", "key", "pub"):
        (store.dir / f"small.{suffix}").unlink()
    with pytest.raises(QVError) as err:
        VM(config, flat_binary=virtio_guest)
    assert err.value.name == "PQC_ERR_KEY" and err.value.path == "storage[1]"
    assert str(second) in err.value.message
    # the failed starts closed storage[0] again: it opens read-write here
    es.EncryptedDisk.open(first, store=store).close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flipped_bit_fails_that_read_only(virtio_guest, store: KeyStore, tmp_path: Path,
                                          capfd: pytest.CaptureFixture[str], seed: int) -> None:
    rng = random.Random(seed)
    image = tmp_path / "disk.qvenc"
    es.create(image, IMAGE_SIZE, None, rng.choice(list(es.AEADS)), "host", store=store)
    first, count = 40, 24                      # 4 KiB sectors 40..63 hold host-written data
    with es.EncryptedDisk.open(image, store=store) as disk:
        for b in range(count):
            disk.write((first + b) * BLOCK, pattern_text(1000 + b))
    data_hit, record_hit = rng.sample(range(first, first + count), 2)
    with open(image, "r+b") as f:
        for off in (DATA_OFF + data_hit * BLOCK + rng.randrange(BLOCK),
                    RECORDS_OFF + record_hit * 64 + rng.randrange(64)):
            f.seek(off)
            byte = f.read(1)[0]
            f.seek(off)
            f.write(bytes([byte ^ (1 << rng.randrange(8))]))
    config = vm_config(tmp_path, [{"path": str(image), "discard": True}],
                       {"enabled": True, "storage_encryption": {"enabled": True}})
    capfd.readouterr()
    r = run_guest(virtio_guest, config, read_first=first * 8, read_blocks=count)
    host_log = capfd.readouterr().err
    check_ok(r, 0, count)
    for b, (status, digest) in enumerate(r.blocks):
        if first + b in (data_hit, record_hit):
            assert status == VIRTIO_BLK_S_IOERR, (first + b, status)
        else:
            assert (status, digest) == (VIRTIO_BLK_S_OK, fnv1a(pattern_text(1000 + b)))
    assert r.disks[0]["io_errors"] == 2
    for sector in (data_hit, record_hit):
        assert f"sector {sector} " in host_log, host_log
    assert str(image) in host_log

    # a flipped header bit: refused at start, naming the disk
    with open(image, "r+b") as f:
        off = rng.choice([24, 64, 96, 300, 4064]) + rng.randrange(16)  # UUID .. MAC
        f.seek(off)
        byte = f.read(1)[0]
        f.seek(off)
        f.write(bytes([byte ^ (1 << rng.randrange(8))]))
    with pytest.raises(QVError) as err:
        VM(config, flat_binary=virtio_guest)
    assert err.value.path == "storage[0]" and str(image) in err.value.message
    assert err.value.name in ("QV_STR_ERR_INTEGRITY", "PQC_ERR_KEY"), err.value


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_encrypted_image_given_another_format_is_refused(virtio_guest, store: KeyStore,
                                                         tmp_path: Path, fmt: str) -> None:
    """An encrypted image is never handed to a guest as a plain disk (it could overwrite the
    header and records); the image stays unchanged."""
    image = tmp_path / "disk.qvenc"
    es.create(image, 1 << 20, None, None, "host", store=store)
    before = image.read_bytes()
    with pytest.raises(QVError) as err:
        VM(vm_config(tmp_path, [{"path": str(image), "format": fmt}], {"enabled": False}),
           flat_binary=virtio_guest)
    assert err.value.name == "QV_STR_ERR_FORMAT" and err.value.path == "storage[0].format"
    assert str(image) in err.value.message
    assert image.read_bytes() == before
