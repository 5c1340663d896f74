"""Fixtures for the engine tests: skip without /dev/kvm, and the freestanding test guests
(tests/engine/guests/*.S) built by tests/support/guest_build.py into a cache directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from guest_build import Guest, build_asm_guest, toolchain_available

GUEST_DIR = Path(__file__).parent / "guests"


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if kvm_usable():
        return
    skip = pytest.mark.skip(reason="/dev/kvm is absent or not accessible")
    for item in items:
        if "kvm" in item.keywords and str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Guest]:
    """guest(name) -> the built Guest (binary cached per session and source hash)."""
    if not toolchain_available():
        pytest.skip("gcc/ld/objcopy not available to build the test guests")
    cache = tmp_path_factory.mktemp("guests")
    built: dict[str, Guest] = {}

    def get(name: str) -> Guest:
        if name not in built:
            built[name] = build_asm_guest(GUEST_DIR / f"{name}.S", cache)
        return built[name]

    return get
