"""Pause / resume / power button of the C engine under ThreadSanitizer (pause_race_tsan.c
built with the engine sources and -fsanitize=thread): no data race report, and the pause
semantics hold while another thread presses the power button."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import needs_kvm

ROOT = Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"


@needs_kvm
def test_pause_resume_under_tsan(tmp_path: Path) -> None:
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("gcc not available")
    sources = sorted(str(p) for d in ("kvm", "devices", "core", "cpuid", "boot")
                     for p in (CSRC / d).glob("*.c"))
    # virtio-blk's I/O engines live in the block layer (csrc/disk/aio.c, io_uring); the
    # encrypted format (OpenSSL) is not needed here
    sources += sorted(str(p) for p in (CSRC / "disk").glob("*.c")
                      if not p.name.startswith("encrypted"))
    exe = tmp_path / "pause_race_tsan"
    build = subprocess.run(
        [cc, "-std=c11", "-D_GNU_SOURCE", "-g", "-O1", "-Wall", "-Wextra", "-Werror",
         "-Wno-tsan",  # virtqueue.c's fences: TSan cannot model them, and they are not ours
         "-fsanitize=thread", f"-I{CSRC / 'include'}", f"-I{CSRC}", "-o", str(exe),
         str(Path(__file__).parent / "pause_race_tsan.c"), *sources, "-lpthread", "-luring",
         "-ldl"],
        capture_output=True, text=True, timeout=600, check=False)
    if build.returncode != 0 and "cannot find -ltsan" in build.stderr:
        pytest.skip(f"no ThreadSanitizer runtime: {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env,
                         check=False)
    output = run.stdout + run.stderr
    assert "ThreadSanitizer" not in output, output
    assert run.returncode == 0, output
    assert run.stdout.startswith("PASS"), output
