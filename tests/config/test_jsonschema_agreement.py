"""The exported JSON Schema and the validator agree on every test config, except for the
checks listed in cross_rules.SCHEMA_GAPS (which the schema cannot express)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from qv_config_cases import BAD, GOOD, REPO

from quantavirt.config import json_schema
from quantavirt.config.cross_rules import SCHEMA_GAPS
from quantavirt.config.validate import find_problems

SCHEMA = json_schema()
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
CONFIGS: dict[str, Any] = {**{f"good-{k}": v for k, v in GOOD.items()},
                           **{f"bad-{case.id}": case.doc() for case in BAD}}


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["additionalProperties"] is False
    storage = SCHEMA["properties"]["storage"]["items"]
    assert any("if" in rule for rule in storage["allOf"])  # io native -> cache
    assert SCHEMA["properties"]["boot"]["allOf"][1] == {
        "dependentRequired": {"initrd": ["kernel"]}}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_validator_and_schema_agree(name: str) -> None:
    doc = CONFIGS[name]
    _, problems = find_problems(doc, check_host=False)
    schema_errors = list(VALIDATOR.iter_errors(doc))
    expressible = [p for p in problems if p.in_schema]
    gaps = [p for p in problems if not p.in_schema]
    assert all(p.rule in SCHEMA_GAPS for p in gaps), gaps
    if expressible:
        assert schema_errors, f"schema accepts what the validator rejects: {expressible}"
    else:
        assert not schema_errors, [e.message for e in schema_errors]
    if name.startswith("good-"):
        assert not problems


def test_the_gap_cases_are_exercised() -> None:
    """Each gap is covered by a bad config the schema accepts (so the list stays honest)."""
    covered = set()
    for case in BAD:
        _, problems = find_problems(case.doc(), check_host=False)
        if problems and not any(p.in_schema for p in problems):
            covered |= {p.rule for p in problems}
    assert covered == set(SCHEMA_GAPS)


def test_schema_command_prints_the_schema() -> None:
    python = REPO / ".venv" / "bin" / "python"
    result = subprocess.run([str(python if python.exists() else sys.executable), "-m",
                             "quantavirt", "schema"], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == SCHEMA
