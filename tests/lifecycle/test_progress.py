"""Progress bars of long storage operations: `storage create --preallocate` (raw: every byte
written; encrypted: every sector sealed) and `storage convert`. On a terminal (a real pty
as stderr) the bar is drawn by default; on a pipe it is not; --progress / -p forces it and
--no-progress suppresses it."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from quantavirt import storage

BAR = re.compile(r"\r    \(\s*(\d+\.\d\d)/100%\) \[[#.]{30}\]\s+[\d.]+ MiB/s")


def run_cli(args: list[str], env: dict[str, str], *, tty: bool) -> tuple[int, str, str]:
    """Run `python -m quantavirt ARGS` with stderr on a pty (tty=True) or a pipe."""
    cmd = [sys.executable, "-m", "quantavirt", *args]
    if not tty:
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=300)  # bytes: keep \r
        return p.returncode, p.stdout.decode(), p.stderr.decode(errors="replace")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            err += chunk
        out = proc.stdout.read().decode() if proc.stdout else ""
        code = proc.wait(300)
    finally:
        os.close(master)
    return code, out, err.decode(errors="replace").replace("\r\n", "\n")


def percents(err: str) -> list[float]:
    return [float(m) for m in BAR.findall(err)]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return dict(os.environ, QUANTAVIRT_HOME=str(home))


def check_bar(err: str) -> None:
    seen = percents(err)
    assert seen and seen[-1] == 100.0, repr(err[-500:])
    assert seen == sorted(seen)
    assert err.rstrip(" ").endswith("\n")  # the last update ends its line


@pytest.mark.parametrize(("tty", "flag", "shown"), [
    (True, None, True), (False, None, False), (False, "--progress", True),
    (True, "--no-progress", False)])
def test_create_raw_preallocated(env: dict[str, str], tmp_path: Path, tty: bool,
                                 flag: str | None, shown: bool) -> None:
    image = tmp_path / "big.raw"
    args = ["storage", "create", "--name", str(image), "--format", "raw", "--size", "64M",
            "--preallocate"] + ([flag] if flag else [])
    code, out, err = run_cli(args, env, tty=tty)
    assert code == 0, err
    assert f"created {image}" in out
    if shown:
        check_bar(err)
    else:
        assert "/100%)" not in err
    # Really preallocated: every block taken, contents zero.
    st = image.stat()
    assert st.st_size == 64 << 20 and st.st_blocks * 512 >= 64 << 20
    with open(image, "rb") as f:
        assert f.read(1 << 20) == bytes(1 << 20)


def test_create_without_preallocation_has_no_bar_and_stays_sparse(
        env: dict[str, str], tmp_path: Path) -> None:
    image = tmp_path / "sparse.raw"
    code, _, err = run_cli(["storage", "create", "--name", str(image), "--format", "raw",
                            "--size", "64M"], env, tty=True)
    assert code == 0 and "/100%)" not in err
    assert image.stat().st_blocks * 512 < 1 << 20


def test_qcow2_preallocation_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    image = tmp_path / "x.qcow2"
    code, _, err = run_cli(["storage", "create", "--name", str(image), "--format", "qcow2",
                            "--size", "64M", "--preallocate"], env, tty=False)
    assert code == 1 and err.startswith("Error: QV_ERR_NOTSUP") and not image.exists()


def test_library_preallocation_reports_progress(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    size = 3 * storage.PREALLOC_CHUNK + 4096
    storage.create(tmp_path / "p.raw", "raw", size, preallocate=True,
                   progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, size) and calls[-1] == (size, size) and len(calls) == 5
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:], strict=False))


def test_create_encrypted_preallocated_on_a_tty(env: dict[str, str], tmp_path: Path) -> None:
    code, _, err = run_cli(["keys", "create", "--name", "default"], env, tty=False)
    assert code == 0, err
    image = tmp_path / "sealed.qvenc"
    code, out, err = run_cli(["storage", "create", "--name", str(image), "--format",
                              "encrypted", "--size", "32M", "--preallocate"], env, tty=True)
    assert code == 0, err
    check_bar(err)
    assert "Created encrypted image" in out
    code, _, err = run_cli(["storage", "create", "--name", str(tmp_path / "quiet.qvenc"),
                            "--format", "encrypted", "--size", "8M", "--preallocate"], env,
                           tty=False)
    assert code == 0 and "/100%)" not in err


@pytest.mark.parametrize(("tty", "flag", "shown"), [
    (True, None, True), (False, None, False), (False, "-p", True),
    (True, "--no-progress", False)])
def test_convert(env: dict[str, str], tmp_path: Path, tty: bool, flag: str | None,
                 shown: bool) -> None:
    src = tmp_path / "src.raw"
    src.write_bytes(os.urandom(1 << 20) * 24)
    dst = tmp_path / "dst.qcow2"
    args = ["storage", "convert", str(src), str(dst), "-O", "qcow2"] + ([flag] if flag else [])
    code, out, err = run_cli(args, env, tty=tty)
    assert code == 0, err
    assert f"Converted {src} -> {dst}" in out
    if shown:
        check_bar(err)
    else:
        assert "/100%)" not in err
    with storage.open_disk(dst, readonly=True) as d:
        assert d.read(5 << 20, 4096) == src.read_bytes()[5 << 20:(5 << 20) + 4096]
