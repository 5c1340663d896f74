"""Hostile images: random changes to header, epoch block, records and data never crash or
hang the C backend; every outcome is a clean QVError with a storage code, or correct data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantavirt import encrypted_storage as es
from quantavirt.errors import QVError

SECTOR = 4096
ALLOWED = {"QV_STR_ERR_INTEGRITY", "QV_STR_ERR_CORRUPT", "QV_STR_ERR_NOTSUP",
           "QV_STR_ERR_FORMAT", "PQC_ERR_KEY"}


@pytest.fixture
def base_image(make_image) -> tuple[Path, bytes, bytes]:
    path = make_image(32 * SECTOR)
    content = random.Random(5).randbytes(32 * SECTOR)
    with es.EncryptedDisk.open(path) as disk:
        disk.write(0, content)
        disk.write(3 * SECTOR + 512, content[:700])  # some records in the other slot
    with es.EncryptedDisk.open(path, readonly=True) as disk:
        content = disk.read(0, 32 * SECTOR)
    return path, path.read_bytes(), content


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 8192 + 4096 + 32 * SECTOR - 1),
                                st.binary(min_size=1, max_size=24)), min_size=1, max_size=4),
       truncate=st.one_of(st.none(), st.integers(0, 8192 + 4096 + 32 * SECTOR)))
def test_mutated_images(base_image, edits, truncate) -> None:
    path, pristine, content = base_image
    data = bytearray(pristine)
    for off, blob in edits:
        data[off:off + len(blob)] = blob
    if truncate is not None:
        del data[truncate:]
    path.write_bytes(bytes(data))
    try:
        try:
            disk = es.EncryptedDisk.open(path, readonly=True)
        except QVError as err:
            assert err.name in ALLOWED, err
            return
        with disk:
            for i in range(32):
                try:
                    got = disk.read(i * SECTOR, SECTOR)
                except QVError as err:
                    assert err.name in {"QV_STR_ERR_INTEGRITY", "QV_STR_ERR_IO"}, err
                    assert f"sector {i} " in err.message or "reading" in err.message
                    continue
                # Whatever reads successfully is the real content (never garbage).
                assert got == content[i * SECTOR:(i + 1) * SECTOR], f"sector {i}"
    finally:
        path.write_bytes(pristine)
