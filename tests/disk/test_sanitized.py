"""The block layer under AddressSanitizer and UBSan: hundreds of mutated qcow2 images (random
bytes in the header, L1, L2 and refcount structures) through a small C harness."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from quantavirt.storage import create, open_disk

ROOT = Path(__file__).resolve().parents[2]
CS = 65536


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("asan") / "disk_fuzz"
    # The raw and qcow2 backends alone (the encrypted layer has its own sanitizer test).
    sources = sorted(str(p) for p in (ROOT / "csrc" / "disk").glob("*.c")
                     if not p.name.startswith("encrypted"))
    cmd = [cc, "-std=c11", "-D_GNU_SOURCE", "-g", "-O1", "-Wall", "-Wextra", "-Werror",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           "-fno-omit-frame-pointer", f"-I{ROOT / 'csrc' / 'include'}", f"-I{ROOT / 'csrc'}",
           *sources, str(ROOT / "csrc" / "core" / "errors.c"),
           str(Path(__file__).parent / "disk_fuzz.c"), "-o", str(out), "-ldl", "-lpthread",
           "-luring"]  # csrc/disk/aio.c, the io_uring engine
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if build.returncode != 0 and "sanitize" in build.stderr and "cannot find" in build.stderr:
        pytest.skip("sanitizer runtime not installed")
    assert build.returncode == 0, build.stderr
    return out


def _base_image(directory: Path, cluster_bits: int) -> bytes:
    image = directory / f"base{cluster_bits}.qcow2"
    if cluster_bits == 16:
        create(image, "qcow2", 4 << 20)
    else:
        qemu = shutil.which("qemu-img")
        if qemu is None:
            create(image, "qcow2", 4 << 20)
        else:
            subprocess.run([qemu, "create", "-q", "-f", "qcow2", "-o",
                            f"cluster_size={1 << cluster_bits}", str(image), "4M"], check=True)
    with open_disk(image) as disk:
        disk.write(0, b"\x01" * 300000)
        disk.write(3 << 20, b"\x02" * 70000)
    return image.read_bytes()


def test_mutated_images_under_sanitizers(harness: Path, tmp_path: Path) -> None:
    rng = random.Random(2024)
    images: list[Path] = []
    for cluster_bits in (16, 12, 9):
        base = _base_image(tmp_path, cluster_bits)
        cs = 1 << cluster_bits
        l1_off = struct.unpack_from(">Q", base, 40)[0]
        rt_off = struct.unpack_from(">Q", base, 48)[0]
        l2_off = struct.unpack_from(">Q", base, l1_off)[0] & 0x00FFFFFFFFFFFE00
        rb_off = struct.unpack_from(">Q", base, rt_off)[0]
        regions = [(0, 112), (l1_off, 64), (l2_off, min(cs, 512)), (rt_off, 64),
                   (rb_off, min(cs, 256))]
        for i in range(150):
            data = bytearray(base)
            start, length = regions[i % len(regions)]
            for _ in range(rng.randrange(1, 6)):
                pos = start + rng.randrange(length)
                if rng.random() < 0.5:
                    data[pos] = rng.randrange(256)
                else:  # plant a plausible-looking big-endian value
                    pos -= pos % 8
                    value = rng.choice([0, 1 << 63, (1 << 63) | cs * rng.randrange(1, 200),
                                        rng.getrandbits(64), cs * rng.randrange(1, 100) + 512])
                    data[pos:pos + 8] = value.to_bytes(8, "big")
            if rng.random() < 0.1:
                data = data[:rng.randrange(len(data))]
            path = tmp_path / f"m{cluster_bits}_{i}.qcow2"
            path.write_bytes(bytes(data))
            images.append(path)
    run = subprocess.run([str(harness), *map(str, images)], capture_output=True, text=True,
                         timeout=500, env={"ASAN_OPTIONS": "detect_leaks=1",
                                           "UBSAN_OPTIONS": "print_stacktrace=1"})
    assert run.returncode == 0, run.stderr[-4000:]
    opened = int(run.stdout.split()[0])
    assert 0 < opened < 2 * len(images)  # some mutations are harmless, some are refused


@pytest.mark.parametrize("options", ["cluster_size=65536", "compat=0.10,cluster_size=4096",
                                     "cluster_size=512,refcount_bits=2"])
def test_random_io_under_sanitizers(harness: Path, tmp_path: Path, options: str) -> None:
    qemu = shutil.which("qemu-img")
    if qemu is None:
        pytest.skip("qemu-img not installed")
    image = tmp_path / "model.qcow2"
    subprocess.run([qemu, "create", "-q", "-f", "qcow2", "-o", options, str(image), "6M"],
                   check=True)
    run = subprocess.run([str(harness), "--model", str(image), "7", "600"], capture_output=True,
                         text=True, timeout=500)
    assert run.returncode == 0, run.stderr[-4000:]
    check = subprocess.run([qemu, "check", str(image)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
