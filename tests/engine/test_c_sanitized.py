"""The engine's C test (tests/c/test_engine.c) built with ASan + UBSan and run: memory errors
or undefined behaviour in the run loop, devices, fallback or teardown fail it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.kvm
def test_engine_c_test_under_sanitizers(tmp_path_factory: pytest.TempPathFactory):
    if not (shutil.which("cmake") and (shutil.which("ninja") or shutil.which("make"))):
        pytest.skip("cmake and a build tool are needed")
    build = tmp_path_factory.mktemp("asan")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), *gen, "-DQV_SANITIZE=ON",
                    "-DQV_BUILD_C_TESTS=ON", "-DQV_BUILD_PYTHON=OFF",
                    "-DCMAKE_BUILD_TYPE=Debug"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "test_engine", "-j", "2"],
                   check=True, capture_output=True)
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "halt_on_error=1"}
    r = subprocess.run([str(build / "test_engine")], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert "test_engine: ok" in r.stdout
