"""Fixtures for the lifecycle tests: the freestanding guests of tests/lifecycle/guests built
into flat binaries, a temporary QUANTAVIRT_HOME, VM configs, and a real `quantavirt serve`
daemon (Unix socket and TCP on a free port) started as a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from guest_build import Guest, build_asm_guest, build_virtio_blk_guest, toolchain_available

GUEST_DIR = Path(__file__).parent / "guests"
needs_kvm = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                               reason="/dev/kvm is absent or not accessible")


@pytest.fixture(scope="session")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Guest]:
    if not toolchain_available():
        pytest.skip("gcc/ld/objcopy not available to build the test guests")
    cache = tmp_path_factory.mktemp("lc-guests")
    return lambda name: build_asm_guest(GUEST_DIR / f"{name}.S", cache)


@pytest.fixture
def qv_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("QUANTAVIRT_HOME", str(home))
    return home


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    path.write_bytes(b"\0" * 4096)
    return path


@pytest.fixture
def make_config(disk: Path) -> Callable[..., dict[str, Any]]:
    def make(name: str, **extra: Any) -> dict[str, Any]:
        # One image per VM: a running VM holds its disk's write lock, as QEMU does.
        own_disk = disk.with_name(f"disk-{name}.raw")
        if not own_disk.exists():
            own_disk.write_bytes(disk.read_bytes())
        cfg: dict[str, Any] = {"name": name, "cpu": {"count": 1},
                               "memory": {"size": "128M"},
                               "storage": [{"path": str(own_disk), "format": "raw"}],
                               "console": {"type": "serial"}}
        cfg.update(extra)
        return cfg
    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    home: Path
    socket: Path
    port: int
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path

    @property
    def token(self) -> str:
        return (self.home / "api-token").read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_daemon(home: Path, sock: Path, port: int, env: dict[str, str], log: Path) -> Daemon:
    out = open(log, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "quantavirt", "serve", "--socket", str(sock),
                             "--listen", f"127.0.0.1:{port}"], env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    out.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited {proc.returncode}: {log.read_text()}")
        if sock.exists() and (home / "api-token").exists():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return Daemon(home, sock, port, proc, env, log)
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"daemon did not come up: {log.read_text()}")


@pytest.fixture
def test_guests_dir(tmp_path: Path) -> Path:
    """The runner's test hook directory ($QUANTAVIRT_TEST_GUESTS): <vm name>.bin files."""
    d = tmp_path / "test-guests"
    d.mkdir()
    return d


@pytest.fixture
def daemon(qv_home: Path, tmp_path: Path, test_guests_dir: Path) -> Iterator[Daemon]:
    env = dict(os.environ, QUANTAVIRT_HOME=str(qv_home),
               QUANTAVIRT_TEST_GUESTS=str(test_guests_dir))
    d = start_daemon(qv_home, tmp_path / "api.sock", free_port(), env, tmp_path / "daemon.log")
    try:
        yield d
    finally:
        d.stop()
        kill_runners(qv_home)


def kill_runners(home: Path) -> None:
    """Kill runner processes a test left behind (by the pids in their records)."""
    for rec in (home / "vms").glob("*/record.json"):
        try:
            pid = json.loads(rec.read_text()).get("pid")
        except (OSError, ValueError):
            continue
        if pid:
            try:
                os.kill(int(pid), 9)
            except OSError:
                pass


@dataclass
class Reply:
    status: int
    body: Any
    raw: bytes

    @property
    def error_name(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("name")  # type: ignore[no-any-return]
        return None


class Api:
    """Plain HTTP/1.1 client (stdlib http.client) for one daemon, over its Unix socket or TCP."""

    def __init__(self, daemon: Daemon, transport: str) -> None:
        self.daemon = daemon
        self.transport = transport

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                token: str | None = "default", timeout: float = 120.0) -> Reply:
        import http.client

        from quantavirt.api.client import UnixHTTPConnection

        if self.transport == "unix":
            conn: http.client.HTTPConnection = UnixHTTPConnection(str(self.daemon.socket),
                                                                   timeout)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=timeout)
        headers = {}
        if token == "default":
            token = self.daemon.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, "/api/v1" + path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        try:
            value = json.loads(payload) if payload else None
        except ValueError:
            value = None
        return Reply(resp.status, value, payload)

    def wait_state(self, name: str, want: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            r = self.request("GET", f"/vms/{name}")
            if r.status == 200 and r.body["state"] == want:
                return r.body  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, f"{name} never reached {want}: {r.body}"
            time.sleep(0.1)


@pytest.fixture(params=["unix", "tcp"])
def api(request: pytest.FixtureRequest, daemon: Daemon) -> Api:
    return Api(daemon, request.param)


@pytest.fixture(scope="session")
def virtio_blk_guest(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The freestanding virtio-blk guest of tests/pci/guest."""
    if not toolchain_available():
        pytest.skip("gcc/ld/objcopy not available to build the test guest")
    return build_virtio_blk_guest(tmp_path_factory.mktemp("virtio-blk-guest"))
