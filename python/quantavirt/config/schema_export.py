"""The JSON Schema (draft 2020-12) of a VM config, generated from the field model.

It expresses every check except those listed in cross_rules.SCHEMA_GAPS.
"""

from __future__ import annotations

from typing import Any

from quantavirt.config.model import SCHEMA_VERSION, VM

SCHEMA_ID = f"urn:quantavirt:vm-config:{SCHEMA_VERSION}"


def json_schema() -> dict[str, Any]:
    body = VM.schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "QuantaVirt VM configuration",
        **body,
    }
