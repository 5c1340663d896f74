"""Guest I/O side by side: the same freestanding guest (benchmarks/guest/) under QuantaVirt and
under qemu-system-x86_64 -accel kvm, on the same raw image, measured from the guest's side.

The guest (a PVH ELF both VMMs boot with their -kernel / boot.kernel) drives a modern
virtio-blk function with 16 requests in flight, polling the used ring, and prints
"S <workload>" before the first request and "E <workload> <count> <bytes>" after the last
completion on COM1; the host timestamps each line as it arrives (the serial line costs both
VMMs the same few exits), so MB/s and IOPS are the guest's view of its disk. Workloads:
sequential / random 4 KiB reads and writes, sequential 1 MiB reads and writes. Setups:
QuantaVirt io "threads" with cache writeback against QEMU aio=threads cache=writeback, and
io "native" with cache none against QEMU aio=native cache=none.

On this machine's emulating KVM backend guest code runs at a few million instructions per
second, so the 4 KiB figures are dominated by the guest's own per-request instructions and
exits, equal for both VMMs; the host's block path shows at 1 MiB.

Run: .venv/bin/python -m pytest benchmarks/bench_guest_io.py -q -s
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quantavirt.vm import VM

GUEST_SRC = Path(__file__).parent / "guest"
CFLAGS = ["-O2", "-ffreestanding", "-fno-pic", "-fno-pie", "-mno-red-zone",
          "-mgeneral-regs-only", "-fno-stack-protector", "-fcf-protection=none",
          "-fno-asynchronous-unwind-tables", "-Wall", "-Wextra", "-Werror"]
IMAGE_BYTES = 64 << 20
CMDLINE = "n4k=4000 n1m=128"
SETUPS = {"threads": ("writeback", "threads"), "native": ("none", "native")}
TIMEOUT = 600.0
RESULTS: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}


@pytest.fixture(scope="module")
def guest_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not all(shutil.which(t) for t in ("gcc", "ld")):
        pytest.skip("gcc/ld not available to build the guest")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable")
    sources = [GUEST_SRC / "entry.S", GUEST_SRC / "blk_bench_guest.c", GUEST_SRC / "guest.ld"]
    key = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    d = tmp_path_factory.mktemp("io-guest")
    elf = d / f"blk-bench-{key}.elf"
    subprocess.run(["gcc", "-c", *CFLAGS, "-o", str(d / "g.o"), str(sources[1])], check=True)
    subprocess.run(["gcc", "-c", "-o", str(d / "e.o"), str(sources[0])], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-N", "--no-warn-rwx-segments", "-z",
                    "noexecstack", "-T", str(sources[2]), "-o", str(elf), str(d / "e.o"),
                    str(d / "g.o")], check=True)
    return elf


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("io-image") / "disk.raw"
    with open(path, "wb") as f:  # fully allocated
        for _ in range(IMAGE_BYTES >> 20):
            f.write(os.urandom(1 << 20))
    return path


def timed_lines(read: Callable[[], bytes]) -> Iterator[tuple[float, str]]:
    """(arrival time, line) for each complete line `read` delivers (b"" = end)."""
    buf = b""
    while True:
        chunk = read()
        if not chunk:
            return
        now = time.monotonic()
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield now, line.decode(errors="replace").strip()


def rates(lines: list[tuple[float, str]]) -> dict[str, tuple[float, float]]:
    """workload -> (MB/s, IOPS) from the S/E lines."""
    start: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for t, line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "S":
            start[parts[1]] = t
        elif len(parts) == 4 and parts[0] == "E" and parts[1] in start:
            secs = t - start[parts[1]]
            out[parts[1]] = (int(parts[3]) / secs / 1e6, int(parts[2]) / secs)
    return out


def run_ours(elf: Path, img: Path, setup: str, tmp: Path) -> list[tuple[float, str]]:
    cache, io = SETUPS[setup]
    config = {"name": f"io-bench-{setup}", "cpu": {"count": 1}, "memory": {"size": "128M"},
              "storage": [{"path": str(img), "format": "raw", "cache": cache, "io": io}],
              "console": {"type": "serial"},
              "boot": {"kernel": str(elf), "cmdline": CMDLINE}}
    lines: list[tuple[float, str]] = []
    with VM(config, log_path=str(tmp / f"vm-{setup}.log")) as vm:
        vm.start()
        deadline = time.monotonic() + TIMEOUT

        def read() -> bytes:
            while time.monotonic() < deadline:
                chunk = vm.console.read(0.05)
                if chunk:
                    return chunk
                if vm.wait(0) is not None:
                    return vm.console.read(0.2)
            return b""

        lines = list(timed_lines(read))
        if vm.state == "RUNNING":
            vm.stop()
        assert vm.exit_status == 0, (vm.exit_status, lines[-5:])
    return lines


def run_qemu(elf: Path, img: Path, setup: str) -> list[tuple[float, str]]:
    cache, aio = SETUPS[setup]
    cmd = ["qemu-system-x86_64", "-accel", "kvm", "-m", "128", "-nodefaults", "-display",
           "none", "-no-reboot", "-serial", "stdio", "-kernel", str(elf), "-append", CMDLINE,
           "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
           "-drive", f"file={img},format=raw,if=none,id=d0,cache={cache},aio={aio}",
           "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    timer = threading.Timer(TIMEOUT, proc.kill)
    timer.start()
    try:
        fd = proc.stdout.fileno()
        lines = list(timed_lines(lambda: os.read(fd, 4096)))
    finally:
        timer.cancel()
        rc = proc.wait()
    assert rc == 1, (rc, lines[-5:])  # isa-debug-exit: (0 << 1) | 1
    return lines


@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("vmm", ["quantavirt", "qemu"])
def test_guest_io(benchmark, guest_elf: Path, image: Path, tmp_path: Path, vmm: str,
                  setup: str) -> None:
    if vmm == "qemu" and not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed")
    got: list[list[tuple[float, str]]] = []
    runner = (lambda: run_ours(guest_elf, image, setup, tmp_path)) if vmm == "quantavirt" \
        else (lambda: run_qemu(guest_elf, image, setup))
    benchmark.pedantic(lambda: got.append(runner()), rounds=1, iterations=1)
    result = rates(got[0])
    assert len(result) == 6, got[0][-10:]
    RESULTS[(vmm, setup)] = result
    benchmark.extra_info.update({f"{w}_MB_s": round(v[0], 1) for w, v in result.items()})
    benchmark.extra_info.update({f"{w}_IOPS": round(v[1]) for w, v in result.items()})


def test_report() -> None:
    """Print the side-by-side table (run with -s)."""
    if not RESULTS:
        pytest.skip("no results (run the whole module)")
    print("\nsetup    workload        QuantaVirt MB/s   IOPS     QEMU MB/s   IOPS")
    for setup in SETUPS:
        ours, qemu = RESULTS.get(("quantavirt", setup), {}), RESULTS.get(("qemu", setup), {})
        for w in ours or qemu:
            o, q = ours.get(w, (0.0, 0.0)), qemu.get(w, (0.0, 0.0))
            print(f"{setup:8s} {w:14s} {o[0]:10.1f} {o[1]:9.0f}   {q[0]:10.1f} {q[1]:9.0f}")
