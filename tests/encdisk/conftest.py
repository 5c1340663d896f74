"""Fixtures of the encrypted-disk tests: a private QUANTAVIRT_HOME with host keys, images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from quantavirt import encrypted_storage as es
from quantavirt.keys import KeyStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "qvhome"
    monkeypatch.setenv("QUANTAVIRT_HOME", str(h))
    return h


@pytest.fixture
def store(home: Path) -> KeyStore:
    ks = KeyStore(home)
    ks.create("host", "ML-KEM-768")
    ks.create("big", "ML-KEM-1024")
    ks.create("small", "ML-KEM-512")
    ks.create("other", "ML-KEM-768")
    return ks


MakeImage = Callable[..., Path]


@pytest.fixture
def make_image(store: KeyStore, tmp_path: Path) -> MakeImage:
    counter = iter(range(1_000_000))

    def make(size: int | str = 1 << 20, key: str = "host", aead: str = "AES-256-GCM",
             preallocate: bool = False) -> Path:
        path = tmp_path / f"img{next(counter)}.qvenc"
        es.create(path, size, None, aead, key, preallocate=preallocate, store=store)
        return path

    return make


@pytest.fixture(scope="session")
def virtio_guest() -> bytes:
    """The freestanding virtio-blk test guest of tests/pci (its build function, loaded by
    path: a conftest is not importable as a module)."""
    import importlib.util
    import os
    import shutil
    import sys
    import tempfile

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is absent or not accessible")
    if not all(shutil.which(t) for t in ("gcc", "ld", "objcopy")):
        pytest.skip("gcc/ld/objcopy not available to build the test guest")
    pci_conftest = Path(__file__).resolve().parents[1] / "pci" / "conftest.py"
    spec = importlib.util.spec_from_file_location("qv_pci_guest_build", pci_conftest)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    with tempfile.TemporaryDirectory(prefix="qv-encdisk-guest-") as cache:
        return module.build_virtio_guest(Path(cache))
