"""INTx through the DSDT's _PRT: the project's guest kernel with `pci=nomsi` (no MSI-X) reads
the routing from \\_SB.PCI0._PRT, gets a level-triggered IOAPIC GSI for each virtio function,
and mounts an ext4 root from virtio-blk with every completion signalled over INTx (ISR read,
line lowered). One boot; its time is printed (-s)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from console_run import run_until

from quantavirt.vm import VM

pytestmark = [pytest.mark.kvm, pytest.mark.slow]

MOUNTED = re.compile(rb"EXT4-fs \(vda\): mounted filesystem")


def test_linux_root_over_intx(guest_kernel_dir: Path, tmp_path: Path, record_property) -> None:
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 not installed")
    root = tmp_path / "root.raw"
    content = tmp_path / "rootfs"
    content.mkdir()
    (content / "hello.txt").write_text("INTx\n")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-d", str(content),
                    str(root), "32M"], check=True)
    config = {"name": "linux-intx", "cpu": {"count": 1}, "memory": {"size": "256M"},
              "storage": [{"path": str(root), "format": "raw"}],
              "console": {"type": "serial"},
              "boot": {"kernel": str(guest_kernel_dir / "vmlinux"),
                       "cmdline": "console=ttyS0 root=/dev/vda rw pci=nomsi panic=-1"}}
    with VM(config, log_path=str(tmp_path / "vm.log")) as vm:
        out, wall = run_until(vm, lambda o: bool(MOUNTED.search(o)) and b"Kernel panic" in o,
                              1200)
        info = vm.machine.virtio_info(0)
        disk = vm.stats().disks[0]
    text = out.decode(errors="replace")
    print(f"\nINTx boot: {wall:.1f} s wall")
    record_property("boot_wall_s", round(wall, 1))
    assert MOUNTED.search(out), text[-3000:]
    # the routing came from _PRT (without it: "can't derive routing for PCI INT A" and
    # "PCI INT A: no GSI", and with pci=nomsi no interrupt at all: the root never mounts)
    assert "can't derive routing" not in text and "no GSI" not in text, text[-4000:]
    assert info["msis"] == 0              # MSI-X never enabled: every interrupt was INTx
    assert disk["rd_ops"] > 0 and disk["wr_ops"] > 0
