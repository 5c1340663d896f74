"""Encrypted disk benchmarks (pytest-benchmark).

    .venv/bin/python -m pytest benchmarks/bench_encdisk.py -o python_files='bench_*.py' \\
        --benchmark-columns=min,mean,ops -q -s

1. AEAD GB/s at 4 KiB: the data path's sector sealing (qv_encdisk_aead_bench: one nonce,
   AAD and tag per 4 KiB sector, the same code as the disk) against `openssl speed -evp
   <cipher> -bytes 4096` measured in the same run, interleaved, best of several rounds each,
   both per second of CPU time (openssl speed's default basis; the machine is shared).
   Goal: at least 85% of OpenSSL for AES-256-GCM (ChaCha20-Poly1305 is reported only).
   `openssl speed` without -aead streams one long message; with -aead it does a TLS-like
   init/AAD/tag sequence per buffer; both are reported, the goal is checked against the
   faster of the two.
2. Disk-layer throughput, encrypted image against a raw image: sequential 1 MiB and random
   4 KiB reads and writes, one Python call per request on both sides (the encrypted backend
   and the raw C backend, quantavirt.storage), so the comparison shows the cost of the
   encryption layer. Reported per wall second and per CPU second of the process (the image is
   page-cached, so the work is CPU; the CPU figure is robust against other load on a shared
   machine).
3. The virtio-blk block path, encrypted against raw: benchmarks/c/bench_blk_path.c (Release
   build) posts batches of 64 requests through the real virtio-pci transport, virtqueue and
   virtio-blk device onto the same data as a raw image and as an encrypted image (converted
   from it, every sector written), the way the engine's I/O thread runs them; 4 KiB and 1 MiB,
   sequential and random, reads and writes, best of 5 interleaved runs, wall and CPU time.
   Run the whole module with -s for the table (test_virtio_report).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from c_bench import c_bench_binary

from quantavirt import encrypted_storage as es
from quantavirt import storage
from quantavirt._ffi import ffi, lib
from quantavirt.keys import KeyStore

GOAL = 0.85
SECTOR = 4096
IMAGE_SIZE = 256 << 20
OPENSSL_NAMES = {1: "aes-256-gcm", 2: "chacha20-poly1305"}


def openssl_speed(cipher: str, aead_mode: bool, seconds: int = 2) -> float:
    """Bytes/s of `openssl speed -evp CIPHER -bytes 4096` (optionally -aead)."""
    cmd = ["openssl", "speed", "-evp", cipher, "-bytes", "4096", "-seconds", str(seconds)]
    if aead_mode:
        cmd.insert(2, "-aead")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    line = [ln for ln in out.splitlines() if ln.lower().startswith(cipher.split("-")[0])][-1]
    value = re.findall(r"([0-9.]+)k", line)[-1]  # in 1000s of bytes per second
    return float(value) * 1000


def ours_speed(aead: int, seconds: float = 2.0) -> float:
    """Bytes/s of the data path's sector sealing, per second of CPU time of this process:
    the basis `openssl speed` uses (user CPU time unless -elapsed), so that other load on
    the machine does not count against either side."""
    out = ffi.new("uint64_t *")
    total, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        assert lib.qv_encdisk_aead_bench(aead, 20000, out) == 0
        total += out[0]
    return total / (time.process_time() - t0)


@pytest.mark.parametrize("aead", [1, 2], ids=["AES-256-GCM", "ChaCha20-Poly1305"])
def test_aead_4k_against_openssl(benchmark: Any, aead: int) -> None:
    cipher = OPENSSL_NAMES[aead]
    ours, stream, tls = [], [], []
    for _ in range(3):  # interleaved: other load on the machine hits both alike
        ours.append(ours_speed(aead))
        stream.append(openssl_speed(cipher, False))
        tls.append(openssl_speed(cipher, True))
    out = ffi.new("uint64_t *")
    benchmark.pedantic(lib.qv_encdisk_aead_bench, args=(aead, 2000, out), rounds=20)
    best = max(ours)
    reference = max(max(stream), max(tls))
    benchmark.extra_info.update({
        "ours_GBps": round(best / 1e9, 3),
        "openssl_stream_GBps": round(max(stream) / 1e9, 3),
        "openssl_aead_GBps": round(max(tls) / 1e9, 3),
        "ratio": round(best / reference, 3),
    })
    print(f"\n{cipher} 4 KiB: ours {best / 1e9:.2f} GB/s, openssl speed -evp "
          f"{max(stream) / 1e9:.2f} GB/s, openssl speed -aead -evp {max(tls) / 1e9:.2f} GB/s, "
          f"ratio {best / reference:.1%}")
    if aead == 1:
        # The goal is set for AES-256-GCM. ChaCha20-Poly1305 is reported only: OpenSSL's own
        # per-message cost (a Poly1305 key per nonce) caps 4 KiB messages near 75% of its
        # streaming rate, which is what `openssl speed` measures for that cipher.
        assert best >= GOAL * reference


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("benchhome")
    store = KeyStore(home)
    store.create("bench")
    enc = home / "bench.qvenc"
    es.create(enc, IMAGE_SIZE, key_name="bench", store=store)
    raw = home / "bench.raw"
    storage.create(raw, "raw", IMAGE_SIZE)
    disk = es.EncryptedDisk.open(enc, "bench", store=store)
    plain = storage.open_disk(raw, "raw")
    chunk = os.urandom(1 << 20)
    for off in range(0, IMAGE_SIZE, 1 << 20):  # fill both, so reads read real data
        disk.write(off, chunk)
        plain.write(off, chunk)
    disk.flush()
    plain.flush()
    yield {"enc": disk, "raw": plain}
    disk.close()
    plain.close()


class _Target:
    def __init__(self, images: dict[str, Any], kind: str) -> None:
        self.kind = kind
        self.disk = images[kind]

    def read(self, off: int, buf: bytearray) -> None:
        self.disk.readinto(off, buf)

    def write(self, off: int, data: bytes) -> None:
        self.disk.write(off, data)


def _run(target: _Target, op: str, block: int, sequential: bool, count: int) -> None:
    rng = random.Random(1)
    buf = bytearray(block)
    data = bytes(random.Random(2).randbytes(block))
    nblocks = IMAGE_SIZE // block
    for k in range(count):
        off = (k % nblocks if sequential else rng.randrange(nblocks)) * block
        if op == "read":
            target.read(off, buf)
        else:
            target.write(off, data)


CASES = [
    ("seq-1M", 1 << 20, True, 64),
    ("rand-4K", SECTOR, False, 4000),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("op", ["read", "write"])
@pytest.mark.parametrize("kind", ["raw", "enc"])
def test_block_path(benchmark: Any, images: Any, kind: str, op: str,
                    case: tuple[str, int, bool, int]) -> None:
    name, block, sequential, count = case
    benchmark.group = f"disk-layer {op} {name}"
    target = _Target(images, kind)
    cpu: list[float] = []

    def timed() -> None:
        t0 = time.process_time()
        _run(target, op, block, sequential, count)
        cpu.append(time.process_time() - t0)

    benchmark.pedantic(timed, rounds=5, warmup_rounds=1)
    seconds = benchmark.stats.stats.min
    cpu_seconds = max(min(cpu), 1e-9)
    nbytes = block * count
    benchmark.extra_info.update({"MBps": round(nbytes / seconds / 1e6, 1),
                                 "IOPS": round(count / seconds),
                                 "MBps_per_cpu_second": round(nbytes / cpu_seconds / 1e6, 1),
                                 "IOPS_per_cpu_second": round(count / cpu_seconds)})
    print(f"\n{kind:>3} {op:<5} {name}: {nbytes / seconds / 1e6:8.1f} MB/s "
          f"{count / seconds:9.0f} IOPS (wall); {nbytes / cpu_seconds / 1e6:8.1f} MB/s "
          f"{count / cpu_seconds:9.0f} IOPS (per CPU second)")



# ---- 3. the virtio-blk block path (C driver), encrypted against raw ----

ROOT = Path(__file__).resolve().parents[1]
VIRTIO_IMAGE = 256 << 20
VIRTIO_TOTAL = {4096: 64 << 20, 1 << 20: 256 << 20}
VIRTIO_WORKLOADS = [("seqread", 4096), ("seqwrite", 4096), ("randread", 4096),
                    ("randwrite", 4096), ("seqread", 1 << 20), ("seqwrite", 1 << 20)]
VIRTIO_RESULTS: dict[tuple[str, int], dict[str, float]] = {}


@pytest.fixture(scope="module")
def blk_bench() -> Path:
    return c_bench_binary("bench_blk_path")


@pytest.fixture(scope="module")
def virtio_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 256 MiB of random data as a raw image and as an encrypted one."""
    home = tmp_path_factory.mktemp("blkhome")
    store = KeyStore(home)
    store.create("bench")
    raw = home / "img.raw"
    with open(raw, "wb") as f:  # fully allocated
        for _ in range(VIRTIO_IMAGE >> 20):
            f.write(os.urandom(1 << 20))
    enc = home / "img.qvenc"
    es.convert(raw, enc, "encrypted", key_name="bench", store=store)
    return {"raw": raw, "encrypted": enc, "key": store.dir / "bench.key"}


def blk_path_run(binary: Path, images: dict[str, Path], fmt: str, workload: str,
                 bs: int) -> tuple[float, float]:
    """(MB/s per wall second, MB/s per CPU second) of one bench_blk_path run."""
    spec = f"encrypted:{images['key']}" if fmt == "encrypted" else fmt
    cmd = [str(binary), str(images[fmt]), spec, workload, str(bs), str(VIRTIO_TOTAL[bs])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    m = re.search(r": ([\d.]+) MB/s, [\d.]+ IOPS, ([\d.]+) s, cpu ([\d.]+) s", out)
    assert m, out
    mbps, wall, cpu = float(m.group(1)), float(m.group(2)), float(m.group(3))
    return mbps, mbps * wall / max(cpu, 1e-9)


@pytest.mark.parametrize("workload,bs", VIRTIO_WORKLOADS,
                         ids=[f"{w}-{b // 1024}K" for w, b in VIRTIO_WORKLOADS])
def test_virtio_blk_path(benchmark: Any, blk_bench: Path, virtio_images: dict[str, Path],
                         workload: str, bs: int) -> None:
    runs: dict[str, list[tuple[float, float]]] = {"raw": [], "encrypted": []}

    def one_round() -> None:  # interleaved: other load on the machine hits both alike
        for fmt in ("raw", "encrypted"):
            runs[fmt].append(blk_path_run(blk_bench, virtio_images, fmt, workload, bs))

    benchmark.group = "virtio-blk path"
    benchmark.pedantic(one_round, rounds=5, iterations=1, warmup_rounds=1)
    info: dict[str, float] = {}
    for fmt, values in runs.items():
        info[f"{fmt}_MBps"] = round(max(v[0] for v in values), 1)
        info[f"{fmt}_MBps_per_cpu_second"] = round(max(v[1] for v in values), 1)
    info["encrypted_over_raw"] = round(info["encrypted_MBps"] / info["raw_MBps"], 3)
    benchmark.extra_info.update(info)
    VIRTIO_RESULTS[(workload, bs)] = info
    assert info["encrypted_MBps"] > 0 and info["raw_MBps"] > 0


def test_virtio_report() -> None:
    """Print the encrypted-vs-raw table of the virtio-blk path (run with -s)."""
    if not VIRTIO_RESULTS:
        pytest.skip("no results (run the whole module)")
    print("\nvirtio-blk path, MB/s (best of 5): wall | per CPU second")
    print(f"{'workload':10s} {'bs':>8s} {'raw':>8s} {'enc':>8s} {'enc/raw':>8s} | "
          f"{'raw':>8s} {'enc':>8s}")
    for workload, bs in VIRTIO_WORKLOADS:
        r = VIRTIO_RESULTS.get((workload, bs))
        if r:
            print(f"{workload:10s} {bs:8d} {r['raw_MBps']:8.0f} {r['encrypted_MBps']:8.0f} "
                  f"{r['encrypted_over_raw']:8.2f} | {r['raw_MBps_per_cpu_second']:8.0f} "
                  f"{r['encrypted_MBps_per_cpu_second']:8.0f}")
