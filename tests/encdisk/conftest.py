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
    """The freestanding virtio-blk test guest of tests/pci."""
    import os
    import tempfile

    from guest_build import build_virtio_blk_guest, toolchain_available

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is absent or not accessible")
    if not toolchain_available():
        pytest.skip("gcc/ld/objcopy not available to build the test guest")
    with tempfile.TemporaryDirectory(prefix="qv-encdisk-guest-") as cache:
        return build_virtio_blk_guest(Path(cache))
