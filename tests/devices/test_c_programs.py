"""Runs the C device test programs (tests/c/test_*.c) built with ASan and UBSan.

Each program plays the guest driver against the real transport and device code (fake guest
RAM between guard pages) and ends with "PASS <name>"; any failed check, sanitizer report or
fault gives a non-zero exit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

PROGRAMS = {
    "test_virtqueue": ["setup_checks", "chain_and_push", "hostile", "notify_logic",
                       "iov_helpers", "adjacent_regions"],
    "test_virtqueue_random": [],
    "test_virtqueue_threads": ["threads_flags", "threads_event_idx"],
    "test_virtio_blk": ["config_and_features", "read_write", "read_write_indirect",
                        "scattered", "flush_getid_unsupp", "discard_write_zeroes", "readonly",
                        "out_of_range", "negotiation_failures", "event_idx",
                        "msix_masking_and_intx", "broken_and_reset", "multiqueue",
                        "rate_limits"],
    "test_virtio_devices": ["rng", "console", "balloon"],
    "test_virtio_pci_random": [],
    "test_pci_config_random": [],
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_c_program(name: str, c_tests_dir: Path, sanitizer_env: dict[str, str]) -> None:
    proc = subprocess.run([str(c_tests_dir / name)], capture_output=True, text=True,
                          env=sanitizer_env, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert f"PASS {name}" in proc.stdout, output
    for case in PROGRAMS[name]:
        assert f"ok {case}\n" in proc.stdout, f"case {case} did not run:\n{output}"
    assert "runtime error" not in proc.stderr, output


@pytest.mark.parametrize("mode", ["threads", "native"])
def test_virtio_blk_with_engines(mode: str, c_tests_dir: Path,
                                 sanitizer_env: dict[str, str]) -> None:
    """Every virtio-blk case again with requests running on the worker pool / io_uring
    engine (the in-memory disk cannot be mapped, so native runs its synchronous fallback)."""
    env = dict(sanitizer_env, QV_BLK_IO=mode)
    proc = subprocess.run([str(c_tests_dir / "test_virtio_blk")], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert f"io mode {mode}" in proc.stdout
    for case in PROGRAMS["test_virtio_blk"]:
        assert f"ok {case}\n" in proc.stdout, f"case {case} did not run:\n{output}"


def test_blk_aio_on_files(tmp_path: Path, c_tests_dir: Path,
                          sanitizer_env: dict[str, str]) -> None:
    """Raw image files with io threads / native: many requests in flight, a flush after all
    earlier writes, O_DIRECT bounce buffers, reset with requests in flight, read-only."""
    proc = subprocess.run([str(c_tests_dir / "test_blk_aio"), str(tmp_path)],
                          capture_output=True, text=True, env=sanitizer_env, timeout=300,
                          check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    for case in ("threads_writeback", "threads_none", "native_none", "native_directsync",
                 "native_writeback", "readonly_threads", "readonly_native"):
        assert f"ok {case}\n" in proc.stdout, output
    assert "PASS test_blk_aio" in proc.stdout
    assert "runtime error" not in proc.stderr, output


def test_random_rings_reach_the_parser(c_tests_dir: Path, sanitizer_env: dict[str, str]) -> None:
    """The random-ring generator must mostly produce rings that parse (otherwise it tests
    nothing) and still hit every family of hostile input."""
    proc = subprocess.run([str(c_tests_dir / "test_virtqueue_random"), "20000"],
                          capture_output=True, text=True, env=sanitizer_env, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("outcomes"))
    counts = [int(x) for x in line.split(":")[1].split()]
    # index 0: setup refused, 1: intact, then QV_VQ_ERR_RING_ADDR.. in enum order
    assert counts[0] > 0 and counts[1] > 0
    broken = dict(zip(["ring_addr", "size", "avail_idx", "head", "next", "loop", "desc_addr",
                       "order", "indirect", "iov", "inflight"], counts[2:13], strict=True))
    for kind in ("avail_idx", "head", "next", "loop", "desc_addr", "order", "indirect",
                 "inflight"):
        assert broken[kind] > 0, f"no run broke with {kind}: {line}"
