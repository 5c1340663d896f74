"""How fast a VM config validates: `pytest benchmarks/test_config_validate.py`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantavirt.config import json_schema, validate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example(name: str) -> Any:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def test_validate_postgres_prod_pure(benchmark: Any) -> None:
    doc = _example("postgres-prod")
    result = benchmark(validate, doc, check_host=False)
    assert result["cpu"]["count"] == 16


def test_validate_classified_workload_pure(benchmark: Any) -> None:
    doc = _example("classified-workload")
    result = benchmark(validate, doc, check_host=False)
    assert result["security"]["sev"]["snp"] is True


def test_export_json_schema(benchmark: Any) -> None:
    schema = benchmark(json_schema)
    assert schema["type"] == "object"
