"""Config files and JSON text: malformed input is QV_ERR_INVAL with line and column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qv_config_cases import base

from quantavirt.config import load_file
from quantavirt.config.loader import parse_json
from quantavirt.errors import QVError


@pytest.mark.parametrize(("text", "where"), [
    ('{"name": "a",\n  "cpu": {"count": 1,}\n}', "line 2 column 22"),
    ("", "line 1 column 1"),
    ('{"name": "a"} extra', "line 1 column 15"),
])
def test_malformed_json_has_line_and_column(text: str, where: str) -> None:
    with pytest.raises(QVError) as info:
        parse_json(text, source="vm.json")
    assert info.value.name == "QV_ERR_INVAL"
    assert where in info.value.message
    assert info.value.path == "vm.json"


@pytest.mark.parametrize(("text", "reason"), [
    ('{"name": "a", "name": "b"}', 'duplicate key "name"'),
    ('{"cpu": {"count": NaN}}', "NaN is not valid JSON"),
    ('{"cpu": {"count": Infinity}}', "Infinity is not valid JSON"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_not_strict_json(text: str, reason: str) -> None:
    with pytest.raises(QVError, match=reason) as info:
        parse_json(text)
    assert info.value.name == "QV_ERR_INVAL"


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(QVError) as info:
        load_file(tmp_path / "missing.json")
    assert info.value.name == "QV_ERR_NOENT"
    with pytest.raises(QVError) as info:
        load_file(tmp_path)
    assert info.value.name == "QV_ERR_INVAL"
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"name": "\xff"}')
    with pytest.raises(QVError, match="not UTF-8"):
        load_file(binary)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"description": "x" * (2 << 20)}))
    with pytest.raises(QVError, match="larger than"):
        load_file(big)


def test_load_file_validates(tmp_path: Path) -> None:
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(base()))
    assert load_file(path, check_host=False)["cpu"]["count"] == 4
