"""The project's guest kernel mounts an ext4 root that lives in an encrypted image.

One boot checks everything (it costs minutes on this machine's emulating backend):
an ext4 image made on the host holds a file with a known pattern; `quantavirt keys create`
makes the host key and `quantavirt storage convert` turns the image into the encrypted format,
in which the pattern appears nowhere; the guest kernel boots with that image as storage[0]
(`format: "encrypted"`, a JSON configuration loaded like `quantavirt launch` does) and
`root=/dev/vda rw`, and mounts it read-write, which writes the superblock through the
encrypted layer. User space cannot run here (the engine issue), so the kernel then dies
looking for init and the VM is stopped. Converted back to raw, the filesystem passes
`e2fsck -fn`, the file is intact, and the mount count went from 0 to 1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from console_run import run_until
from ext4 import superblock

from quantavirt.config import load_file
from quantavirt.vm import VM

pytestmark = [pytest.mark.kvm, pytest.mark.slow]

BOOT_TIMEOUT = 900.0
MOUNTED = re.compile(rb"EXT4-fs \(vda\): mounted filesystem")
PATTERN = b"QuantaVirt encrypted root, known pattern 0123456789abcdef\n"  # 58 bytes
FILE_BYTES = PATTERN * 2000  # about 114 KiB: many 4 KiB sectors of the image


def need_tools() -> None:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is absent or not accessible")
    for tool in ("mkfs.ext4", "debugfs", "dumpe2fs", "e2fsck"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed (e2fsprogs)")


def cli(home: Path, *args: str) -> str:
    """Run `quantavirt ARGS` as a user would, with the test's state directory."""
    env = dict(os.environ, QUANTAVIRT_HOME=str(home))
    out = subprocess.run([sys.executable, "-m", "quantavirt", *args], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"quantavirt {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


def make_ext4(path: Path, tmp: Path) -> None:
    """32 MiB ext4 without a journal (the kernel dies mounted; a journal would be left
    needing recovery, which e2fsck -n reports) holding /etc and /pattern.bin."""
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "qvencroot",
                    str(path), "32M"], check=True)
    payload = tmp / "pattern.bin"
    payload.write_bytes(FILE_BYTES)
    subprocess.run(["debugfs", "-w", "-R", f"write {payload} pattern.bin", str(path)],
                   check=True, capture_output=True)
    subprocess.run(["debugfs", "-w", "-R", "mkdir etc", str(path)], check=True,
                   capture_output=True)


def test_guest_kernel_mounts_encrypted_root_rw(guest_kernel_dir, tmp_path, monkeypatch,
                                               record_property):
    need_tools()
    home = tmp_path / "qvhome"
    monkeypatch.setenv("QUANTAVIRT_HOME", str(home))
    cli(home, "keys", "create", "--name", "host", "--kem", "ML-KEM-1024")

    raw = tmp_path / "root.raw"
    make_ext4(raw, tmp_path)
    assert raw.read_bytes().count(PATTERN) == 2000
    before = superblock(raw)
    assert before["Mount count"] == "0"

    enc = tmp_path / "root.qvenc"
    cli(home, "storage", "convert", str(raw), str(enc), "--format", "encrypted",
        "--key", "host", "--aead", "AES-256-GCM")
    image = enc.read_bytes()
    for needle in (PATTERN, PATTERN[:16], PATTERN[20:36], b"qvencroot", b"pattern.bin"):
        assert image.find(needle) == -1, needle
    info = json.loads(cli(home, "storage", "info", str(enc), "--json"))
    assert info["kem"] == "ML-KEM-1024" and info["aead"] == "AES-256-GCM"

    config_file = tmp_path / "vm.json"
    config_file.write_text(json.dumps({
        "name": "encrypted-root", "cpu": {"count": 1}, "memory": {"size": "256M"},
        "storage": [{"path": str(enc), "format": "encrypted",
                     "encrypted": {"kem": "ML-KEM-1024", "aead": "AES-256-GCM"}}],
        "console": {"type": "serial", "log": str(tmp_path / "console.log")},
        "boot": {"kernel": str(guest_kernel_dir / "vmlinux"),
                 "cmdline": "console=ttyS0 root=/dev/vda rw panic=-1"},
        "pqc": {"enabled": True}}))
    config = load_file(str(config_file))

    with VM(config, log_path=str(tmp_path / "vm.log")) as vm:
        # after the mount the kernel looks for an init it cannot run; that is the end
        out, wall = run_until(vm, lambda o: bool(MOUNTED.search(o)) and b"Kernel panic" in o,
                              BOOT_TIMEOUT)
        disk = vm.stats().disks[0]
    print(f"\nencrypted-root boot: {wall:.1f} s wall, disk {disk}")
    record_property("encrypted_boot_wall_s", round(wall, 1))
    text = out.decode(errors="replace")
    assert MOUNTED.search(out), text[-3000:]
    assert re.search(r"\[vda\] 65536 512-byte logical blocks", text), text[-3000:]
    assert "VFS: Mounted root (ext4 filesystem) on device" in text, text[-3000:]
    assert disk["rd_ops"] > 0 and disk["wr_ops"] > 0 and disk["io_errors"] == 0, disk

    # the mount wrote through the encrypted layer: still no plaintext in the image file
    image = enc.read_bytes()
    assert image.find(PATTERN) == -1 and image.find(PATTERN[:16]) == -1

    back = tmp_path / "back.raw"
    cli(home, "storage", "convert", str(enc), str(back), "--format", "raw")
    fsck = subprocess.run(["e2fsck", "-fn", str(back)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    cat = subprocess.run(["debugfs", "-R", "cat /pattern.bin", str(back)], check=True,
                         capture_output=True)
    assert cat.stdout == FILE_BYTES
    after = superblock(back)
    assert after["Mount count"] == "1", after
    assert after["Last mount time"] != before["Last mount time"]
    assert after["Filesystem volume name"] == "qvencroot"
