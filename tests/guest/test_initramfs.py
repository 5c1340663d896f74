"""The initramfs builder, checked with real partners: GNU cpio reads the archive, and QEMU
(TCG) boots the project's guest kernel with it through to each of init's actions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from quantavirt.guest import INIT_BANNER, CpioArchive, build_initramfs


def test_cpio_lists_what_we_wrote(tmp_path: Path):
    image = build_initramfs(tmp_path / "i.cpio", extra_files={"/etc/hello": b"hi\n"})
    listing = subprocess.run(["cpio", "-itv"], input=image.read_bytes(), capture_output=True,
                             check=True).stdout.decode()
    names = {line.split()[-1] if "->" not in line else line.split()[-3]
             for line in listing.splitlines()}
    assert {"init", "bin/busybox", "dev/console", "etc/hello", "bin/sh"} <= names
    assert "bin/sh -> busybox" in listing
    # Extract and compare content byte for byte.
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], input=image.read_bytes(), cwd=out, check=True)
    assert (out / "etc" / "hello").read_bytes() == b"hi\n"
    assert (out / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()


def test_archive_alignment():
    archive = CpioArchive()
    archive.add_file("a", b"123")
    data = archive.to_bytes()
    assert len(data) % 4 == 0 and data.startswith(b"070701")
    assert data.rstrip(b"\0").endswith(b"TRAILER!!!")


def _qemu_boot(kernel: Path, initrd: Path, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-smp", "2", "-nographic",
         "-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd),
         "-append", f"console=ttyS0 panic=-1 qv.action={action}"],
        capture_output=True, text=True, timeout=240)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs QEMU")
@pytest.mark.parametrize("action,marker", [
    ("poweroff", "reboot: Power down"),
    ("reboot", "reboot: Restarting system"),
    ("panic", "Kernel panic - not syncing: Attempted to kill init"),
])
def test_qemu_boots_guest_kernel_into_our_init(guest_kernel_dir: Path, initramfs: Path,
                                               action: str, marker: str):
    result = _qemu_boot(guest_kernel_dir / "bzImage", initramfs, action)
    assert result.returncode == 0, result.stdout[-2000:]
    assert INIT_BANNER in result.stdout
    assert f"quantavirt-init: action {action}" in result.stdout
    assert marker in result.stdout, result.stdout[-2000:]
