"""The quac100 backend's handling of garbage replies, in C under AddressSanitizer and UBSan:
no memory error and no undefined behaviour whatever the card answers."""

from __future__ import annotations

import subprocess

import pytest
from quac100_simdev import build_sanitized_fuzz_driver


@pytest.fixture(scope="module")
def fuzz_driver(sim_binary: object) -> object:
    return build_sanitized_fuzz_driver()


@pytest.mark.parametrize("seed", [11, 12])
def test_garbage_under_sanitizers(start_sim, fuzz_driver, seed: int) -> None:  # type: ignore[no-untyped-def]
    dev = start_sim(f"garbage={seed}")
    out = subprocess.run([str(fuzz_driver), dev.path, "300"], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "ERROR: AddressSanitizer" not in out.stderr and "runtime error" not in out.stderr
    counts = dict(item.split("=") for item in out.stdout.split())
    assert int(counts["ok"]) > 0 and int(counts["err"]) > 0 and counts["failures"] == "0"
    assert dev.alive()


def test_honest_device_under_sanitizers(start_sim, fuzz_driver) -> None:  # type: ignore[no-untyped-def]
    dev = start_sim()
    out = subprocess.run([str(fuzz_driver), dev.path, "30"], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    counts = dict(item.split("=") for item in out.stdout.split())
    assert counts["err"] == "0" and counts["failures"] == "0"
