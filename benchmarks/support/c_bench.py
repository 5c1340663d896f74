"""Builds one of the C benchmark programs (benchmarks/c/bench_*.c) in a Release tree of its
own, without sanitizers or the Python module, for the pytest benchmarks that run them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "c-bench-release"


def c_bench_binary(target: str) -> Path:
    """Configure (once) and build `target`; its path. Fails the calling test with the build's
    output when cmake or the compiler does."""
    cmake = shutil.which("cmake")
    assert cmake, "cmake is not installed"
    for cmd in ([cmake, "-S", str(ROOT), "-B", str(BUILD), "-DQV_BUILD_C_TESTS=ON",
                 "-DQV_BUILD_PYTHON=OFF", "-DQV_SANITIZE=OFF", "-DCMAKE_BUILD_TYPE=Release"],
                [cmake, "--build", str(BUILD), "-j2", "--target", target]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return BUILD / target
