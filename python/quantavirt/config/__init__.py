"""The VM configuration language: field model, validation, host rules, effective config and
JSON Schema export.

    load_file(path, *, check_host=True, host=None) -> dict   # effective config of a file
    validate(doc, *, check_host=True, host=None) -> dict     # effective config of a value
    json_schema() -> dict                                     # draft 2020-12 JSON Schema

Failures raise QVError (file and JSON errors) or QVMultiError (every validation problem).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantavirt.config.loader import read_config
from quantavirt.config.schema_export import json_schema
from quantavirt.config.validate import validate
from quantavirt.host import HostInfo


def load_file(path: str | Path, *, check_host: bool = True, host: HostInfo | None = None,
              allow_existing: bool = False) -> dict[str, Any]:
    """Read, parse and validate a VM config file; its effective config."""
    return validate(read_config(path), check_host=check_host, host=host,
                    allow_existing=allow_existing)


__all__ = ["json_schema", "load_file", "validate"]
