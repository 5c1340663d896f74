"""Fixtures of the config tests: an isolated $QUANTAVIRT_HOME. Shared data and helpers are in
qv_config_cases.py (importable because this folder is put on sys.path: pytest runs with
--import-mode=importlib, which does not)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$QUANTAVIRT_HOME in tmp_path, with networks/ and vms/ created."""
    monkeypatch.setenv("QUANTAVIRT_HOME", str(tmp_path))
    (tmp_path / "networks").mkdir()
    (tmp_path / "vms").mkdir()
    return tmp_path
