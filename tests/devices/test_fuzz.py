"""libFuzzer run of tests/fuzz/fuzz_virtqueue.c: hostile rings against the split virtqueue
with ASan and UBSan, the fake guest RAM between PROT_NONE guard pages. Seeded with inputs of
the deterministic random-ring generator so the fuzzer starts from rings that parse."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUZZ_RUNS = 2_000_000
FUZZ_SECONDS = 45


def test_fuzz_virtqueue(tmp_path: Path, c_tests_dir: Path, sanitizer_env: dict[str, str]) -> None:
    clang = shutil.which("clang")
    assert clang, "clang is missing: scripts/setup installs it (debian-packages/devices.txt)"
    binary = tmp_path / "fuzz_virtqueue"
    build = subprocess.run(
        [clang, "-g", "-O1", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
         "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
         "-I", str(ROOT / "csrc" / "include"),
         str(ROOT / "tests" / "fuzz" / "fuzz_virtqueue.c"),
         str(ROOT / "csrc" / "devices" / "virtqueue.c"),
         str(ROOT / "csrc" / "core" / "guest_memory.c"), "-o", str(binary)],
        capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = subprocess.run([str(c_tests_dir / "test_virtqueue_random"), "64", str(corpus)],
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
