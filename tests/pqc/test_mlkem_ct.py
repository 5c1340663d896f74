"""Constant-time check of ML-KEM keygen, encaps and decaps: tests/c/test_mlkem_ct.c runs under
valgrind's memcheck with the secrets marked undefined, so any branch or memory index that
depends on a secret is reported as an error. The core is built for it in its own build
directory with -DQV_CT_CHECK (which turns on the declassification of rho, a public value
derived from the seed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "ct-check"

pytestmark = pytest.mark.skipif(
    shutil.which("valgrind") is None or shutil.which("cmake") is None,
    reason="valgrind and cmake are needed (scripts/setup installs both)")


@pytest.fixture(scope="module")
def ct_program() -> Path:
    subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(BUILD), "-DQV_BUILD_PYTHON=OFF",
         "-DQV_BUILD_C_TESTS=ON", "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_C_FLAGS=-DQV_CT_CHECK -g"],
        check=True, capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(BUILD), "-j2", "--target", "test_mlkem_ct",
                    "--target", "test_keccak_x4"], check=True, capture_output=True, text=True)
    return BUILD / "test_mlkem_ct"


def memcheck(program: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--track-origins=yes",
         str(program), *args],
        capture_output=True, text=True, timeout=600)


def error_count(stderr: str) -> int:
    found = re.search(r"ERROR SUMMARY: (\d+) errors", stderr)
    assert found, stderr
    return int(found.group(1))


def test_no_secret_dependent_branches_or_indices(ct_program: Path) -> None:
    run = memcheck(ct_program)
    assert error_count(run.stderr) == 0, run.stderr
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith("OK")
    assert "code path portable" in run.stdout
    if "avx2" in Path("/proc/cpuinfo").read_text():
        assert "code path avx2" in run.stdout
    for level in (512, 768, 1024):
        assert f"ML-KEM-{level}: keygen, encaps, decaps and implicit rejection done" in run.stdout


def test_checker_catches_a_secret_branch(ct_program: Path) -> None:
    """The negative control: a deliberate branch on a secret byte is reported."""
    run = memcheck(ct_program, "--leak")
    assert error_count(run.stderr) > 0
    assert "Conditional jump or move depends on uninitialised value" in run.stderr
    assert run.returncode == 99


def test_keccak_x4_equals_reference(ct_program: Path) -> None:
    """tests/c/test_keccak_x4.c: the unrolled, 4-lane and 8-lane permutations (every SIMD
    path the CPU has) against the reference qv_keccak_f1600, and 4-lane SHAKE128 against
    qv_shake128."""
    run = subprocess.run([str(ct_program.with_name("test_keccak_x4"))], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4-lane path portable checked" in run.stdout
    assert "8-lane permutation checked" in run.stdout
    assert run.stdout.strip().endswith("OK")
