"""Builds the standalone ML-DSA C tests with CMake (-DQV_BUILD_C_TESTS=ON, in a build
directory of their own) and runs them: the kernel checks natively, and the constant-time
check under valgrind memcheck with the seed, secret key and signing randomness marked
undefined, which must report zero errors. A canary run branches on a secret on purpose and
must be flagged, proving the checker is live."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def c_tests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cmake") is None:
        pytest.fail("cmake is missing (scripts/setup installs it)")
    build = tmp_path_factory.mktemp("mldsa-c-build")
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DQV_BUILD_C_TESTS=ON",
                    "-DQV_BUILD_PYTHON=OFF", "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, capture_output=True, text=True, timeout=300)
    subprocess.run(["cmake", "--build", str(build), "-j2", "--target", "test_mldsa_ct",
                    "test_mldsa_kernels"], check=True, capture_output=True, text=True,
                   timeout=600)
    return build


def test_kernels_match_fips204_definitions(c_tests: Path) -> None:
    run = subprocess.run([str(c_tests / "test_mldsa_kernels")], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout


def run_memcheck(binary: Path, *args: str) -> tuple[int, str]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.fail("valgrind is missing (scripts/debian-packages/pqc-mldsa.txt lists it)")
    run = subprocess.run([valgrind, "--tool=memcheck", "--track-origins=yes",
                          str(binary), *args], capture_output=True, text=True, timeout=600)
    match = re.search(r"ERROR SUMMARY: (\d+) errors", run.stderr)
    assert match, run.stderr[-2000:]
    return int(match.group(1)), run.stdout + run.stderr


def test_sign_and_keygen_constant_time_under_memcheck(c_tests: Path) -> None:
    errors, output = run_memcheck(c_tests / "test_mldsa_ct")
    assert errors == 0, output[-6000:]
    assert "code path portable" in output
    paths = output.count("code path ")
    for n in (44, 65, 87):
        assert output.count(f"ML-DSA-{n}: keygen, deterministic and hedged sign checked") == paths


def test_memcheck_flags_a_secret_branch(c_tests: Path) -> None:
    errors, output = run_memcheck(c_tests / "test_mldsa_ct", "--canary")
    assert errors > 0, "memcheck did not flag the deliberate secret-dependent branch"
    assert "Conditional jump or move depends on uninitialised value" in output
