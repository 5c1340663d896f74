"""The loader benchmarks reuse the loader tests' fixtures (stock kernel cache, PVH ELF)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "qv_boot_test_fixtures",
    Path(__file__).resolve().parents[2] / "tests" / "boot" / "conftest.py")
assert _spec and _spec.loader
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

stock_kernel = _fixtures.stock_kernel
pvh_elf = _fixtures.pvh_elf
