"""``quantavirt schema``: print the JSON Schema (draft 2020-12) of VM config files."""

from __future__ import annotations

import argparse
import json
from typing import Any

from quantavirt.config.schema_export import json_schema


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=None if args.compact else 2))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "schema", help="print the JSON Schema of VM config files",
        description="Print the JSON Schema (draft 2020-12) of VM config files, generated from "
                    "the validator's own field model. A few cross-field rules (see "
                    "docs/config.md) are checked by `vm validate` only.")
    p.add_argument("--compact", action="store_true", help="one line instead of indented")
    p.set_defaults(handler=_schema)
