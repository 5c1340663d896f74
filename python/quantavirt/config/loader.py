"""Reading VM config files: strict JSON (no NaN/Infinity, no duplicate keys), size-capped,
with malformed input reported as QV_ERR_INVAL at its line and column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantavirt.errors import QVError

MAX_CONFIG_BYTES = 1 << 20  # a VM config is a few KiB; refuse to parse megabytes


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Duplicate(f"duplicate key {json.dumps(key)} in a JSON object")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str, source: str = "<config>") -> Any:
    """The JSON value of ``text``; QVError QV_ERR_INVAL for anything that is not strict JSON."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise QVError("QV_ERR_INVAL", f"malformed JSON at line {err.lineno} column "
                      f"{err.colno}: {err.msg}", path=source) from None
    except RecursionError:
        raise QVError("QV_ERR_INVAL", "JSON is nested too deeply", path=source) from None
    except ValueError as err:  # duplicate keys, NaN/Infinity, huge integers
        raise QVError("QV_ERR_INVAL", f"invalid JSON: {err}", path=source) from None


def read_config_text(path: str | Path) -> str:
    """The text of a config file; QV_ERR_NOENT / QV_ERR_PERM / QV_ERR_IO / QV_ERR_INVAL."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise QVError("QV_ERR_NOENT", f"config file not found: {name}") from None
    except PermissionError:
        raise QVError("QV_ERR_PERM", f"config file not readable: {name}") from None
    except IsADirectoryError:
        raise QVError("QV_ERR_INVAL", f"config path is a directory: {name}") from None
    except OSError as err:
        raise QVError("QV_ERR_IO", f"cannot read config file {name}: {err.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise QVError("QV_ERR_INVAL", f"config file {name} is larger than "
                      f"{MAX_CONFIG_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise QVError("QV_ERR_INVAL", f"config file {name} is not UTF-8 (byte {err.start})",
                      ) from None


def read_config(path: str | Path) -> Any:
    return parse_json(read_config_text(path), source=str(path))
