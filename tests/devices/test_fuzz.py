"""Bounded libFuzzer runs with ASan and UBSan, guest RAM between PROT_NONE guard pages:

- fuzz_virtqueue: hostile rings against the split virtqueue;
- fuzz_virtio_pci: a hostile driver programming the virtio-pci transport of a virtio-blk,
  -rng, -console or -balloon device (registers, RAM, kicks).

Each is seeded with inputs of its deterministic random generator (tests/c/test_*_random.c)
so the fuzzer starts from scenarios that reach the parsing code.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUZZ_RUNS = 2_000_000
FUZZ_SECONDS = 30

TARGETS = {
    "fuzz_virtqueue": ("test_virtqueue_random",
                       ["csrc/devices/virtqueue.c", "csrc/core/guest_memory.c"]),
    "fuzz_virtio_pci": ("test_virtio_pci_random",
                        ["csrc/devices/virtqueue.c", "csrc/core/guest_memory.c",
                         "csrc/devices/virtio_pci.c", "csrc/devices/virtio_blk.c",
                         "csrc/devices/memdisk.c", "csrc/devices/virtio_rng.c",
                         "csrc/devices/virtio_console.c", "csrc/devices/virtio_balloon.c",
                         # virtio-blk's asynchronous engine and the block layer it calls
                         "csrc/disk/aio.c", "csrc/disk/disk.c", "csrc/disk/raw.c",
                         "csrc/disk/qcow2.c", "csrc/disk/qcow2_meta.c", "csrc/core/errors.c"]),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz(target: str, tmp_path: Path, c_tests_dir: Path,
              sanitizer_env: dict[str, str]) -> None:
    clang = shutil.which("clang")
    assert clang, "clang is missing: scripts/setup installs it (debian-packages/devices.txt)"
    seeder, sources = TARGETS[target]
    binary = tmp_path / target
    build = subprocess.run(
        [clang, "-g", "-O1", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
         "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
         "-I", str(ROOT / "csrc" / "include"), "-I", str(ROOT / "csrc"),
         str(ROOT / "tests" / "fuzz" / f"{target}.c"),
         *(str(ROOT / s) for s in sources), "-o", str(binary), "-lpthread", "-luring", "-ldl"],
        capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = subprocess.run([str(c_tests_dir / seeder), "64", str(corpus)],
                           capture_output=True, text=True, env=sanitizer_env, check=False)
    assert seeds.returncode == 0, seeds.stdout + seeds.stderr
    assert len(list(corpus.iterdir())) == 64

    proc = subprocess.run(
        [str(binary), f"-runs={FUZZ_RUNS}", f"-max_total_time={FUZZ_SECONDS}", "-max_len=70000",
         "-print_final_stats=1", str(corpus)],
        capture_output=True, text=True, env=sanitizer_env, timeout=FUZZ_SECONDS + 120,
        cwd=tmp_path, check=False)
    log = proc.stderr[-6000:]
    assert proc.returncode == 0, log
    assert "ERROR: AddressSanitizer" not in proc.stderr, log
    assert "runtime error" not in proc.stderr, log
    executed = [line for line in proc.stderr.splitlines()
                if "stat::number_of_executed_units" in line]
    assert executed and int(executed[-1].split(":")[-1]) > 10_000, log
