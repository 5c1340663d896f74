"""Shared test fixtures: artefacts several areas boot (the project's guest kernel, initramfs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def guest_kernel_dir() -> Path:
    """The project's own guest kernel (built once per machine, then cached)."""
    out = subprocess.run([str(ROOT / "scripts" / "build-guest-kernel")], check=True,
                         capture_output=True, text=True, timeout=1800)
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def initramfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default QuantaVirt test initramfs (busybox + /init)."""
    from quantavirt.guest import build_initramfs

    return build_initramfs(tmp_path_factory.mktemp("initramfs") / "initramfs.cpio")
