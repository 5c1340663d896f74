"""VM records in the state directory ($QUANTAVIRT_HOME/vms/<name>/, see quantavirt.state).

    config.json   the effective config (what `vm export` writes back out)
    record.json   state, runner pid, timestamps, last error, how the VM last ended
    record.lock   flock held for every read-modify-write of record.json
    op.lock       flock held for the length of one lifecycle operation on the VM
    control.sock  the runner's control socket (while a runner lives)
    runner.log    the runner's log; vm.log the engine's log

Every file is written atomically (temporary file, fsync, rename, fsync of the directory), so
a crash leaves the old or the new version, never a mix. Creating a VM is an exclusive mkdir
of its directory: of two creators of one name (threads, processes, a daemon and the local CLI)
exactly one succeeds, the other gets QV_ERR_EXIST; the directory stays until `destroy`, so the
name stays taken across restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quantavirt import state
from quantavirt.errors import QVError

STATES = ("CREATED", "RUNNING", "PAUSED", "STOPPED", "CRASHED", "DESTROYED")
NAME_RE = re.compile(r"^[a-zA-Z0-9._-]{1,64}$")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_name(name: str) -> str:
    """A VM name as the schema allows it (and so safe as a directory name)."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise QVError("QV_ERR_INVAL", "a VM name is 1-64 characters of [a-zA-Z0-9._-]",
                      path="name")
    return name


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`: write a temporary file, fsync, rename, fsync the dir."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, (json.dumps(value, indent=2) + "\n").encode())


@contextlib.contextmanager
def flocked(path: Path, *, blocking: bool = True) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise QVError("QV_ERR_BUSY", "another operation on this VM is in progress") from None
        yield
    finally:
        os.close(fd)


def vm_dir(name: str) -> Path:
    return state.vm_dir(check_name(name))


def exists(name: str) -> bool:
    return (vm_dir(name) / "record.json").is_file()


def _require(name: str) -> Path:
    d = vm_dir(name)
    if not (d / "record.json").is_file():
        raise QVError("QV_ERR_NOENT", f"no VM named {name}")
    return d


def create(effective: dict[str, Any]) -> dict[str, Any]:
    """Make the VM's directory (exclusively), its config and its CREATED record."""
    name = check_name(effective["name"])
    state.vms_dir().mkdir(parents=True, exist_ok=True)
    d = state.vm_dir(name)
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        raise QVError("QV_ERR_EXIST", f"VM name already in use: {name}", path="name") from None
    fsync_dir(d.parent)
    write_json(d / "config.json", effective)
    record = {"name": name, "uuid": effective.get("uuid"), "state": "CREATED",
              "pid": None, "pid_start": None, "created_at": now(), "updated_at": now(),
              "started_at": None, "stopped_at": None, "last_exit": None, "last_error": None}
    write_json(d / "record.json", record)  # written last: a VM without it is not listed
    return record


def read(name: str) -> dict[str, Any]:
    d = _require(name)
    try:
        value = json.loads((d / "record.json").read_text())
    except (OSError, ValueError) as e:
        raise QVError("QV_ERR_IO", f"VM record of {name} unreadable: {e}") from None
    if not isinstance(value, dict):
        raise QVError("QV_ERR_IO", f"VM record of {name} is not an object")
    return value


def update(name: str, **changes: Any) -> dict[str, Any]:
    """Read-modify-write of the record under its lock; the new record."""
    d = _require(name)
    with flocked(d / "record.lock"):
        record = read(name)
        record.update(changes)
        record["updated_at"] = now()
        write_json(d / "record.json", record)
        return record


def read_config(name: str) -> dict[str, Any]:
    d = _require(name)
    try:
        value = json.loads((d / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise QVError("QV_ERR_IO", f"config of VM {name} unreadable: {e}") from None
    return value  # type: ignore[no-any-return]


def write_config(name: str, effective: dict[str, Any]) -> None:
    write_json(_require(name) / "config.json", effective)


def names() -> list[str]:
    base = state.vms_dir()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir()
                  if NAME_RE.match(p.name) and (p / "record.json").is_file())


def remove(name: str) -> None:
    """Free the name at once (rename away), then delete the files."""
    d = _require(name)
    grave = d.with_name(f".destroyed-{name}-{secrets.token_hex(4)}")
    os.rename(d, grave)
    fsync_dir(d.parent)
    shutil.rmtree(grave, ignore_errors=True)


def operation_lock(name: str) -> contextlib.AbstractContextManager[None]:
    return flocked(_require(name) / "op.lock")
