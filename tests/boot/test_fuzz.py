"""Mutated bzImages and ELF kernels through the loader built with ASan and UBSan: every input
must give 0 or a QV error, never an out-of-bounds access or undefined behaviour."""

from __future__ import annotations

import os
import random
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# More with QV_FUZZ_ITERATIONS=20000 for a long local run.
ITERATIONS = int(os.environ.get("QV_FUZZ_ITERATIONS", "400"))
SOURCES = [*sorted((ROOT / "csrc" / "boot").glob("*.c")), ROOT / "csrc" / "core" / "errors.c"]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "harness"
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Wall", "-Wextra",
                    "-Werror", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                    "-I", str(ROOT / "csrc" / "include"), "-I", str(ROOT / "csrc"),
                    "-o", str(out), str(Path(__file__).with_name("fuzz_harness.c")),
                    *map(str, SOURCES)], check=True)
    return out


def mutate(rng: random.Random, base: bytes, hot: list[int]) -> bytes:
    img = bytearray(base)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.3:
            img = img[:rng.randint(0, len(img))]
        elif kind < 0.7 and len(img) >= 8:
            at = rng.choice(hot) if rng.random() < 0.8 else rng.randrange(len(img) - 7)
            if at + 8 <= len(img):
                value = rng.choice([0, 1, 0xFF, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFFFFFFFFFF,
                                    rng.getrandbits(64), rng.getrandbits(16)])
                struct.pack_into("<Q", img, at, value & 0xFFFFFFFFFFFFFFFF)
        elif img:
            at = rng.randrange(min(len(img), 0x400))
            img[at] ^= 1 << rng.randrange(8)
    return bytes(img)


def run(harness: Path, files: list[Path]) -> list[str]:
    res = subprocess.run([str(harness), *map(str, files)], capture_output=True, text=True,
                         check=False, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    lines = res.stdout.splitlines()
    assert len(lines) == len(files) + 1
    assert lines[-1].startswith("acpi ") and int(lines[-1].split()[1]) > 0
    return lines[:-1]


def test_mutated_bzimages(harness: Path, tmp_path: Path, bzimage_factory) -> None:
    base = bytes(bzimage_factory(bytes(range(256)) * 64))
    hot = [0x1F1, 0x1F4, 0x200, 0x206, 0x211, 0x22C, 0x230, 0x234, 0x236, 0x238, 0x258,
           0x260]
    rng = random.Random(1234)
    files = []
    for i in range(ITERATIONS):
        p = tmp_path / f"bz{i}"
        p.write_bytes(mutate(rng, base, hot))
        files.append(p)
    results = run(harness, files)
    codes = {int(line.split()[0]) for line in results}
    assert codes <= {0, -1}, codes  # success or QV_ERR_INVAL, nothing else
    assert -1 in codes and 0 in codes  # the mutations reach both outcomes


def test_mutated_elves(harness: Path, tmp_path: Path, pvh_elf: Path) -> None:
    base = pvh_elf.read_bytes()
    phoff = struct.unpack_from("<Q", base, 32)[0]
    phnum = struct.unpack_from("<H", base, 56)[0]
    hot = [16, 24, 32, 52, 56] + [phoff + 56 * i + f for i in range(phnum)
                                  for f in (0, 8, 24, 32, 40)]
    note = next(struct.unpack_from("<Q", base, phoff + 56 * i + 8)[0] for i in range(phnum)
                if struct.unpack_from("<I", base, phoff + 56 * i)[0] == 4)
    hot += [note, note + 4, note + 8, note + 16]
    rng = random.Random(5678)
    files = []
    for i in range(ITERATIONS):
        p = tmp_path / f"elf{i}"
        p.write_bytes(mutate(rng, base, hot))
        files.append(p)
    results = run(harness, files)
    codes = {int(line.split()[0]) for line in results}
    assert codes <= {0, -1}, codes
    assert -1 in codes and 0 in codes
