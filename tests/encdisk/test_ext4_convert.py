"""A real ext4 filesystem (mkfs.ext4 -d, no mount needed) through the encrypted format:
raw -> encrypted (the file's pattern appears nowhere in the image) -> changed through the
encrypted layer -> raw, which e2fsck -fn finds clean, with the files intact and the mount
count changed. (The guest-kernel version of this test comes with the virtio-blk wiring.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from quantavirt import encrypted_storage as es

pytestmark = pytest.mark.skipif(shutil.which("mkfs.ext4") is None or
                                shutil.which("debugfs") is None,
                                reason="e2fsprogs is needed")

PATTERN = b"QuantaVirt known pattern 0123456789 " * 7  # 252 bytes


def test_ext4_image_round_trip(store, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "pattern.bin").write_bytes(PATTERN * 4000)
    raw = tmp_path / "fs.raw"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-d", str(tree), str(raw), "32M"],
                   check=True, capture_output=True)
    assert raw.read_bytes().find(PATTERN) != -1
    enc = tmp_path / "fs.qvenc"
    es.convert(raw, enc, "encrypted", key_name="host", store=store)
    image = enc.read_bytes()
    for needle in (PATTERN, PATTERN[:32], PATTERN[100:140]):
        assert image.find(needle) == -1
    # Change the filesystem through the encrypted layer as a guest would: real e2fsprogs
    # tools change a scratch copy (mount count, a new file), and every 512-byte block that
    # differs is written through the layer (read-modify-write inside 4 KiB sectors).
    scratch = tmp_path / "scratch.raw"
    shutil.copyfile(raw, scratch)
    count = int(re.search(r"Mount count:\s+(\d+)", dumpe2fs(raw)).group(1))  # type: ignore[union-attr]
    subprocess.run(["tune2fs", "-C", str(count + 3), str(scratch)], check=True,
                   capture_output=True)
    (tmp_path / "second.bin").write_bytes(PATTERN[::-1] * 300)
    subprocess.run(["debugfs", "-w", "-R", f"write {tmp_path / 'second.bin'} second.bin",
                    str(scratch)], check=True, capture_output=True)
    before, after = raw.read_bytes(), scratch.read_bytes()
    changed = [off for off in range(0, len(after), 512)
               if before[off:off + 512] != after[off:off + 512]]
    assert len(changed) > 3
    with es.EncryptedDisk.open(enc, store=store) as disk:
        for off in changed:
            disk.write(off, after[off:off + 512])
    back = tmp_path / "back.raw"
    es.convert(enc, back, "raw", store=store)
    fsck = subprocess.run(["e2fsck", "-fn", str(back)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    cat = subprocess.run(["debugfs", "-R", "cat /pattern.bin", str(back)], check=True,
                         capture_output=True)
    assert cat.stdout == PATTERN * 4000
    assert f"Mount count:              {count + 3}" in dumpe2fs(back)
    cat2 = subprocess.run(["debugfs", "-R", "cat /second.bin", str(back)], check=True,
                          capture_output=True)
    assert cat2.stdout == PATTERN[::-1] * 300
    assert back.read_bytes() == after


def dumpe2fs(path: Path) -> str:
    return subprocess.run(["dumpe2fs", "-h", str(path)], check=True, capture_output=True,
                          text=True).stdout
