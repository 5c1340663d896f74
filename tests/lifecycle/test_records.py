"""VM records: atomic writes, exclusive creation across processes, names as paths, the log
line format, local reconciliation of a dead runner."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantavirt import lifecycle, records
from quantavirt.errors import QVError
from quantavirt.logs import format_line


def _create_in_process(home: str, cfg: dict[str, Any], barrier: Any, out: Any) -> None:
    os.environ["QUANTAVIRT_HOME"] = home
    barrier.wait()
    try:
        lifecycle.create(cfg)
        out.put("won")
    except QVError as e:
        out.put(e.name)


def test_parallel_process_creates_one_wins(qv_home: Path,
                                           make_config: Callable[..., dict[str, Any]]) -> None:
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_create_in_process,
                         args=(str(qv_home), make_config("same"), barrier, out))
             for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = sorted(out.get(timeout=5) for _ in range(n))
    assert results == ["QV_ERR_EXIST"] * (n - 1) + ["won"]
    assert records.names() == ["same"]


def test_atomic_write_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    for i in range(20):
        records.write_json(target, {"i": i})
    assert json.loads(target.read_text()) == {"i": 19}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "x" * 65, "sp ace", "é"])
def test_bad_names_never_become_paths(qv_home: Path, name: str) -> None:
    with pytest.raises(QVError) as e:
        records.vm_dir(name)
    assert e.value.name == "QV_ERR_INVAL"


def test_state_survives_and_missing_vm(qv_home: Path,
                                       make_config: Callable[..., dict[str, Any]]) -> None:
    rec = lifecycle.create(make_config("keep"))
    assert rec["state"] == "CREATED"
    assert records.read("keep")["uuid"] == records.read_config("keep")["uuid"]
    with pytest.raises(QVError) as e:
        lifecycle.show("nope")
    assert e.value.name == "QV_ERR_NOENT"
    # An unfinished create (directory without record) is not listed and keeps the name.
    (qv_home / "vms" / "half").mkdir()
    assert records.names() == ["keep"]


def test_dead_runner_is_marked_crashed(qv_home: Path,
                                       make_config: Callable[..., dict[str, Any]]) -> None:
    lifecycle.create(make_config("ghost"))
    # A runner pid that cannot be alive (its start time does not match any process).
    records.update("ghost", state="RUNNING", pid=os.getpid(), pid_start=1)
    rec = lifecycle.reconcile("ghost")
    assert rec["state"] == "CRASHED" and rec["pid"] is None
    assert rec["last_error"]["name"] == "QV_ERR_INTERNAL"
    with pytest.raises(QVError) as e:
        lifecycle.pause("ghost")
    assert e.value.name == "QV_ERR_STATE"
    assert lifecycle.destroy("ghost")["state"] == "DESTROYED"
    assert records.names() == []


def test_log_line_format() -> None:
    assert format_line("ERROR", "lifecycle", "VM a: boom") == \
        "[ERROR] quantavirt::lifecycle: VM a: boom"
    with pytest.raises(ValueError):
        format_line("FATAL", "x", "y")
