"""The project's own guest kernel builds from Debian's linux-source-6.1 with our config.

The build is cached (scripts/build-guest-kernel), so this costs minutes once per machine
and seconds after; device tests boot the result.
"""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAGMENT = ROOT / "guest-kernel" / "guest-6.1.config"


@pytest.mark.slow
def test_guest_kernel_has_every_configured_driver_built_in(guest_kernel_dir):
    config = (guest_kernel_dir / ".config").read_text().splitlines()
    for line in FRAGMENT.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        option, value = line.split("=", 1)
        if value == "n":
            assert not any(c.startswith(option + "=") for c in config), option
        else:
            assert line in config, line
    assert "CONFIG_MODULES=y" not in config


@pytest.mark.slow
def test_guest_kernel_images_are_loadable(guest_kernel_dir):
    bzimage = (guest_kernel_dir / "bzImage").read_bytes()
    assert bzimage[0x202:0x206] == b"HdrS"  # Linux boot protocol header
    vmlinux = (guest_kernel_dir / "vmlinux").read_bytes()
    assert vmlinux[:4] == b"\x7fELF"
    # The PVH entry note is what lets the loader start the uncompressed kernel directly.
    notes = subprocess.run(["readelf", "-n", str(guest_kernel_dir / "vmlinux")],
                           capture_output=True, text=True, check=True).stdout
    xen_notes = [line for line in notes.splitlines() if line.strip().startswith("Xen")]
    assert any("0x00000012" in line for line in xen_notes), notes  # XEN_ELFNOTE_PHYS32_ENTRY
