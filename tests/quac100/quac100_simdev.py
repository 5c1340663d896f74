"""Build and run the QUAC 100 test device (tests/quac100/quac100_sim.c).

The device is a FUSE file answering the card's ioctl ABI (CUSE is not in this kernel: see the
comment at the top of quac100_sim.c). The core is built as a static library with CMake into
build/quac100-sim/ (kept between runs) and the simulator is linked against it and libfuse3.
Shared by tests/quac100, tests/pqc_backends and benchmarks/bench_pqc_backends.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).resolve().with_name("quac100_sim.c")
BUILD_DIR = ROOT / "build" / "quac100-sim"
DEVICE_ENV = "QUANTAVIRT_QUAC100_DEVICE"


def unavailable_reason() -> str | None:
    """Why the test device cannot run here, or None."""
    if os.geteuid() != 0:
        return "mounting the FUSE test device needs root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this kernel)"
    if shutil.which("pkg-config") is None or subprocess.run(
            ["pkg-config", "--exists", "fuse3"], check=False).returncode != 0:
        return "libfuse3-dev is not installed (scripts/debian-packages/quac100.txt)"
    return None


def build_core() -> Path:
    """libqv_core.a of this checkout, built by CMake (incremental)."""
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(BUILD_DIR), "-DQV_BUILD_PYTHON=OFF",
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(BUILD_DIR), "-j2", "--target", "qv_core"],
                   check=True, capture_output=True)
    return BUILD_DIR / "libqv_core.a"


def build_simulator() -> Path:
    core = build_core()
    out = BUILD_DIR / "quac100_sim"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], check=True,
                           capture_output=True, text=True).stdout.split()
    subprocess.run(["gcc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
                    f"-I{ROOT / 'csrc' / 'include'}", f"-I{ROOT / 'vendor'}", str(SOURCE),
                    str(core), *flags, "-lcrypto", "-lpthread", "-o", str(out)],
                   check=True, capture_output=True)
    return out


SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
              "-fno-omit-frame-pointer"]


def build_sanitized_fuzz_driver() -> Path:
    """quac100_fuzz_driver.c against the core built with ASan + UBSan (build/quac100-asan)."""
    build = ROOT / "build" / "quac100-asan"
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DQV_BUILD_PYTHON=OFF",
                    "-DQV_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True,
                   capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "-j2", "--target", "qv_core"], check=True,
                   capture_output=True)
    out = build / "quac100_fuzz_driver"
    subprocess.run(["gcc", "-O1", "-g", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                    "-Werror", *SANITIZERS, f"-I{ROOT / 'csrc' / 'include'}",
                    str(SOURCE.with_name("quac100_fuzz_driver.c")), str(build / "libqv_core.a"),
                    "-lcrypto", "-lpthread", "-ldl", "-o", str(out)],
                   check=True, capture_output=True)
    return out


def build_shared_object(source: Path, out: Path) -> Path:
    """A shared library from `source` linked with the core (the fake liboqs of the tests)."""
    core = build_core()
    subprocess.run(["gcc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-shared", "-fPIC", "-Wall",
                    "-Wextra", "-Werror", f"-I{ROOT / 'csrc' / 'include'}", str(source),
                    str(core), "-lcrypto", "-lpthread", "-o", str(out)],
                   check=True, capture_output=True)
    return out


class SimDevice:
    """One running test device: `path` is the node to point the quac100 backend at."""

    def __init__(self, binary: Path, *faults: str, name: str = "quac100_15") -> None:
        self.mount = Path(tempfile.mkdtemp(prefix="quac100-sim-"))
        self.path = str(self.mount / name)
        self.proc = subprocess.Popen(
            [str(binary), str(self.mount), f"--name={name}", *(f"--{f}" for f in faults)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"quac100_sim did not start: {line!r} {err!r}")
        deadline = time.monotonic() + 10
        while not os.path.exists(self.path):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("quac100_sim mounted but the device never appeared")
            time.sleep(0.01)

    def control(self, *settings: str) -> None:
        """Change the faults at run time (`key=value`, or `reset`)."""
        with open(self.mount / "control", "w") as f:
            f.write("\n".join(settings) + "\n")

    def stats(self) -> dict[str, int]:
        text = (self.mount / "control").read_text()
        return {k: int(v) for k, v in (item.split("=") for item in text.split())}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """The card disappears at once (no clean unmount)."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        # A server that died leaves a dead mount ("transport endpoint is not connected").
        if os.path.ismount(self.mount) or _listed_mount(self.mount):
            subprocess.run(["umount", "-l", str(self.mount)], check=False, capture_output=True)
        try:
            self.mount.rmdir()
        except OSError:
            pass


def _listed_mount(path: Path) -> bool:
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[1] == str(path) for line in f)
    except OSError:
        return False


# ---- pytest fixtures (imported by the conftest.py of each folder that uses the device) ----


@pytest.fixture(scope="session")
def sim_binary() -> Path:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"QUAC 100 test device cannot run: {reason}")
    return build_simulator()


@pytest.fixture
def start_sim(sim_binary: Path):  # type: ignore[no-untyped-def]
    """Factory: start_sim("fail_result=0x10b", ...) -> a running SimDevice, stopped after."""
    started: list[SimDevice] = []

    def start(*faults: str, name: str = "quac100_15") -> SimDevice:
        dev = SimDevice(sim_binary, *faults, name=name)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.stop()


@pytest.fixture
def card(start_sim, monkeypatch: pytest.MonkeyPatch) -> SimDevice:  # type: ignore[no-untyped-def]
    """An honest test device, and the quac100 backend pointed at it (auto picks it too)."""
    dev = start_sim()
    monkeypatch.setenv(DEVICE_ENV, dev.path)
    return dev
