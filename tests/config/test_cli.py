"""`quantavirt vm validate` and `quantavirt schema`, run as the user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from qv_config_cases import EXAMPLES, REPO, apply, base, localize

VENV_PYTHON = REPO / ".venv" / "bin" / "python"


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    python = VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)
    env = {**os.environ, "QUANTAVIRT_HOME": str(home)}
    return subprocess.run([str(python), "-m", "quantavirt", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def write(home: Path, doc: Any) -> str:
    path = home / "vm.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_valid_config(home: Path) -> None:
    config = write(home, localize(base(), home))
    result = run(home, "vm", "validate", "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{config}: VM 'vm1' is valid\n"
    assert result.stderr == ""


def test_invalid_config_prints_every_error(home: Path) -> None:
    doc = apply(localize(base(), home), [(("storage", 0, "io"), "native"),
                                         (("cpu", "count"), "4")])
    result = run(home, "vm", "validate", "--config", write(home, doc))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        'Error: QV_ERR_INVAL (-1): cpu.count: expected an integer, got string "4"',
        "Error: QV_ERR_INVAL (-1): storage[0].io: native AIO is incompatible with writeback "
        "cache (use cache none or directsync)",
    ]
    assert result.stdout == ""


def test_json_output(home: Path) -> None:
    result = run(home, "vm", "validate", "--config", str(EXAMPLES / "minimal-linux.json"),
                 "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out == {"valid": False, "effective": None, "errors": [{
        "code": -2, "name": "QV_ERR_NOENT", "path": "storage[0].path",
        "message": "disk image not found: /var/lib/quantavirt/disks/minimal.qcow2"}]}
    config = write(home, localize(base(), home))
    result = run(home, "vm", "validate", "--config", config, "--json")
    assert result.returncode == 0
    out = json.loads(result.stdout)
    assert out["valid"] is True and out["errors"] == []
    assert out["effective"]["cpu"]["topology"] == {"sockets": 1, "cores": 4, "threads": 1}


def test_print_effective_and_no_host_checks(home: Path) -> None:
    result = run(home, "vm", "validate", "--config", str(EXAMPLES / "postgres-prod.json"),
                 "--print-effective", "--no-host-checks")
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["memory"]["max_size"] == "64G"
    assert effective["storage"][0]["io"] == "native"


def test_malformed_and_missing_files(home: Path) -> None:
    bad = home / "bad.json"
    bad.write_text('{"name": "x",,}')
    result = run(home, "vm", "validate", "--config", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: QV_ERR_INVAL (-1): {bad}: malformed JSON at "
                                    "line 1 column 14")
    result = run(home, "vm", "validate", "--config", str(home / "nope.json"), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"][0]["name"] == "QV_ERR_NOENT"


@pytest.mark.parametrize("args", [["--help"], ["vm", "--help"], ["vm", "validate", "--help"],
                                  ["schema", "--help"]])
def test_help(home: Path, args: list[str]) -> None:
    result = run(home, *args)
    assert result.returncode == 0
    assert "usage: quantavirt" in result.stdout


def test_usage_errors(home: Path) -> None:
    assert run(home, "vm").returncode == 2
    result = run(home, "vm", "validate")
    assert result.returncode == 2
    assert "--config" in result.stderr


def test_schema_command(home: Path) -> None:
    result = run(home, "schema", "--compact")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1
    assert json.loads(result.stdout)["properties"]["cpu"]["required"] == ["count"]
