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
2. Block-path throughput, encrypted image against a raw file: sequential 1 MiB and random
   4 KiB reads and writes. Both go through one Python call per request (the encrypted image
   through the C backend, the raw file through os.pread/os.pwrite: the raw C backend is not in
   this tree), so the comparison shows the cost of the encryption layer. Reported per wall
   second and per CPU second of the process (the image is page-cached, so the work is CPU;
   the CPU figure is robust against other load on a shared machine).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from typing import Any

import pytest

from quantavirt import encrypted_storage as es
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
    with open(raw, "wb") as f:
        f.truncate(IMAGE_SIZE)
    disk = es.EncryptedDisk.open(enc, "bench", store=store)
    fd = os.open(raw, os.O_RDWR)
    chunk = os.urandom(1 << 20)
    for off in range(0, IMAGE_SIZE, 1 << 20):  # fill both, so reads read real data
        disk.write(off, chunk)
        os.pwrite(fd, chunk, off)
    disk.flush()
    os.fsync(fd)
    yield {"enc": disk, "raw": fd}
    disk.close()
    os.close(fd)


class _Target:
    def __init__(self, images: dict[str, Any], kind: str) -> None:
        self.kind = kind
        self.disk = images["enc"]
        self.fd = images["raw"]

    def read(self, off: int, buf: bytearray) -> None:
        if self.kind == "enc":
            self.disk.readinto(off, buf)
        else:
            os.preadv(self.fd, [buf], off)

    def write(self, off: int, data: bytes) -> None:
        if self.kind == "enc":
            self.disk.write(off, data)
        else:
            os.pwrite(self.fd, data, off)


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
    benchmark.group = f"block-path {op} {name}"
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

