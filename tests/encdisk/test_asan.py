"""tests/c/test_encdisk_asan.c: the encrypted backend under ASan + UBSan with hostile images."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "asan-encdisk"

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is needed")


def test_encrypted_backend_under_sanitizers(tmp_path: Path) -> None:
    subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(BUILD), "-DQV_BUILD_PYTHON=OFF",
         "-DQV_BUILD_C_TESTS=ON", "-DQV_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=Debug"],
        check=True, capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(BUILD), "-j2", "--target", "test_encdisk_asan"],
                   check=True, capture_output=True, text=True, timeout=900)
    run = subprocess.run([str(BUILD / "test_encdisk_asan"), str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    assert run.stdout.strip().endswith("OK")
    found = re.search(r"(\d+) refused at open, (\d+) opened, (\d+) sector errors", run.stdout)
    assert found, run.stdout
    refused, opened, sector_errors = (int(g) for g in found.groups())
    assert refused > 100 and opened > 100 and sector_errors > 100, run.stdout
