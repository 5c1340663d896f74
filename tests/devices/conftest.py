"""Builds the C device tests once per session: CMake with the standalone C tests and
ASan/UBSan on, without the Python module, into build/c-tests-asan of this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cmake_build(build_dir: Path, *options: str) -> Path:
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is not installed (scripts/setup installs it)")
    configure = [cmake, "-S", str(ROOT), "-B", str(build_dir), "-DQV_BUILD_C_TESTS=ON",
                 "-DQV_BUILD_PYTHON=OFF", *options]
    for cmd in (configure, [cmake, "--build", str(build_dir), "-j2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return build_dir


@pytest.fixture(scope="session")
def c_tests_dir() -> Path:
    """Directory holding the sanitizer-built C test programs."""
    return _cmake_build(ROOT / "build" / "c-tests-asan", "-DQV_SANITIZE=ON",
                        "-DCMAKE_BUILD_TYPE=Debug")


@pytest.fixture(scope="session")
def sanitizer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env
