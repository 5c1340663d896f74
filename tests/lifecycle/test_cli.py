"""The `quantavirt vm` lifecycle verbs: through a running daemon (its socket) and locally
(no daemon), --json on read commands, export / re-create round trip, error output format."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import Daemon, Guest, kill_runners, needs_kvm


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "quantavirt", "vm", *args], env=env,
                       capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


@pytest.fixture(params=["daemon", "local"])
def mode_env(request: pytest.FixtureRequest, qv_home: Path, tmp_path: Path,
             test_guests_dir: Path) -> Any:
    if request.param == "daemon":
        d: Daemon = request.getfixturevalue("daemon")
        env = dict(d.env, QUANTAVIRT_API_SOCKET=str(d.socket))
        yield env, d
    else:
        env = dict(os.environ, QUANTAVIRT_HOME=str(qv_home),
                   QUANTAVIRT_TEST_GUESTS=str(test_guests_dir),
                   QUANTAVIRT_API_SOCKET=str(tmp_path / "no-daemon.sock"))
        yield env, None
        kill_runners(qv_home)


def write(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


def test_create_list_show_export_recreate(mode_env: Any, tmp_path: Path,
                                          make_config: Callable[..., dict[str, Any]]) -> None:
    env, _ = mode_env
    cfg = write(tmp_path / "a.json", make_config("a", description="round trip"))
    out = cli(env, "create", "--config", str(cfg), "--json")
    assert json.loads(out.stdout)["state"] == "CREATED"
    dup = cli(env, "create", "--config", str(cfg), check=False)
    assert dup.returncode == 1
    assert dup.stderr.startswith("Error: QV_ERR_EXIST (-5): name: VM name already in use")
    listed = json.loads(cli(env, "list", "--json").stdout)["vms"]
    assert [(v["name"], v["state"]) for v in listed] == [("a", "CREATED")]
    assert "a" in cli(env, "list").stdout and "CREATED" in cli(env, "list").stdout
    shown = json.loads(cli(env, "show", "a", "--json").stdout)
    assert shown["state"] == "CREATED" and shown["config"]["description"] == "round trip"
    exported = tmp_path / "export.json"
    cli(env, "export", "a", "--output", str(exported))
    first = json.loads(exported.read_text())
    assert first == shown["config"]
    cli(env, "destroy", "a")
    assert json.loads(cli(env, "list", "--json").stdout)["vms"] == []
    cli(env, "create", "--config", str(exported))
    again = tmp_path / "again.json"
    cli(env, "export", "a", "--output", str(again))
    assert json.loads(again.read_text()) == first  # same effective config, uuid included
    bad = cli(env, "start", "nope", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: QV_ERR_NOENT (-2)")
    bad = cli(env, "resume", "a", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: QV_ERR_STATE (-10)")


@needs_kvm
def test_run_pause_stats_stop(mode_env: Any, tmp_path: Path, test_guests_dir: Path,
                              make_config: Callable[..., dict[str, Any]],
                              guest: Callable[[str], Guest]) -> None:
    env, daemon = mode_env
    shutil.copy(guest("count").path, test_guests_dir / "c.bin")
    cli(env, "create", "--config", str(write(tmp_path / "c.json", make_config("c"))))
    started = json.loads(cli(env, "start", "c", "--json").stdout)
    assert started["state"] == "RUNNING"
    if daemon is not None:  # the daemon started it: the runner is the daemon's child
        ppid = Path(f"/proc/{started['pid']}/stat").read_text().rsplit(")", 1)[1].split()[1]
        assert int(ppid) == daemon.proc.pid
    stats = json.loads(cli(env, "stats", "c", "--json").stdout)
    assert stats["pid"] == started["pid"] and len(stats["vcpus"]) == 1
    text = cli(env, "stats", "c").stdout
    assert "vCPU 0:" in text and "exits:" in text
    assert "PAUSED" in cli(env, "pause", "c").stdout
    assert cli(env, "pause", "c", check=False).stderr.startswith("Error: QV_ERR_STATE")
    assert "RUNNING" in cli(env, "resume", "c").stdout
    r = cli(env, "stop", "c", "--timeout", "0.5", check=False)
    assert r.returncode == 1 and r.stderr.startswith("Error: QV_ERR_TIMEOUT (-11)")
    assert "STOPPED" in cli(env, "stop", "c", "--force").stdout
    assert json.loads(cli(env, "show", "c", "--json").stdout)["state"] == "STOPPED"


def test_stale_socket_falls_back_to_local(qv_home: Path, tmp_path: Path,
                                          make_config: Callable[..., dict[str, Any]]) -> None:
    """A socket file nobody answers on (a daemon that died) does not stop the CLI."""
    import socket

    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    env = dict(os.environ, QUANTAVIRT_HOME=str(qv_home), QUANTAVIRT_API_SOCKET=str(stale))
    cli(env, "create", "--config", str(write(tmp_path / "s.json", make_config("s"))))
    assert json.loads(cli(env, "list", "--json").stdout)["vms"][0]["name"] == "s"
