"""`storage` create / info / rekey / convert through main()."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from quantavirt import encrypted_storage as es
from quantavirt.cli import main
from quantavirt.errors import QVError


def test_create_info_rekey_cli(store, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["storage", "create", "--format", "encrypted", "--name", "vm1", "--size", "8M",
                 "--key", "big", "--kem", "ML-KEM-1024", "--aead", "ChaCha20-Poly1305"]) == 0
    image = home / "images" / "vm1.qvenc"
    assert image.exists() and es.detect_format(image) == "encrypted"
    capsys.readouterr()
    assert main(["storage", "info", "vm1", "--json", "--verify"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kem"] == "ML-KEM-1024" and info["aead"] == "ChaCha20-Poly1305"
    assert info["virtual_size"] == 8 << 20 and info["host_key"] == "big"
    assert info["verified"] is True
    _, sk = store.load_secret_key("big")
    assert bytes(sk).hex()[:32] not in json.dumps(info)
    assert main(["storage", "rekey", "vm1", "--old-key", "big", "--new-key", "host"]) == 0
    assert main(["storage", "info", str(image)]) == 0
    text = capsys.readouterr().out
    assert "ML-KEM-768" in text and "ChaCha20-Poly1305" in text and "host" in text
    # Wrong old key: a QV error, exit 1, naming the image.
    assert main(["storage", "rekey", "vm1", "--old-key", "big", "--new-key", "host"]) == 1
    err = capsys.readouterr().err
    assert "PQC_ERR_KEY" in err and str(image) in err
    # Mismatched --kem for the key.
    assert main(["storage", "create", "--format", "encrypted", "--name", "vm2", "--size", "8M",
                 "--kem", "ML-KEM-1024", "--key", "host"]) == 1
    assert "PQC_ERR_ALGORITHM" in capsys.readouterr().err


def test_convert_raw_encrypted_raw(store, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(3)
    src = tmp_path / "src.raw"
    size = 5 * (1 << 20) + 4096 + 512
    pattern = b"FIND-ME-IF-YOU-CAN-" * 20
    data = bytearray(size)
    for off in range(0, size, 65536):  # sparse-ish: some chunks stay zero
        if rng.random() < 0.6:
            data[off:off + 4000] = rng.randbytes(4000)
    data[777_777:777_777 + len(pattern)] = pattern
    src.write_bytes(data)
    enc = tmp_path / "disk.qvenc"
    assert main(["storage", "convert", str(src), str(enc), "--format", "encrypted",
                 "--key", "host", "-p"]) == 0
    err = capsys.readouterr().err
    assert "(100.00/100%)" in err
    assert enc.read_bytes().find(pattern[:19]) == -1
    back = tmp_path / "back.raw"
    assert main(["storage", "convert", str(enc), str(back), "-O", "raw"]) == 0
    assert back.read_bytes() == bytes(data)
    # encrypted -> encrypted with another key and AEAD
    enc2 = tmp_path / "disk2.qvenc"
    calls: list[tuple[int, int]] = []
    es.convert(enc, enc2, "encrypted", key_name="big", aead="ChaCha20-Poly1305",
               progress=lambda d, t: calls.append((d, t)), store=store)
    assert calls[0] == (0, size) and calls[-1] == (size, size)
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:], strict=False))
    with es.EncryptedDisk.open(enc2, store=store, readonly=True) as disk:
        assert disk.read(0, size) == bytes(data)
        assert es.info(enc2, store=store)["aead"] == "ChaCha20-Poly1305"


def test_convert_refusals(store, tmp_path: Path) -> None:
    src = tmp_path / "a.raw"
    src.write_bytes(os.urandom(8192))
    qcow = tmp_path / "q.qcow2"
    qcow.write_bytes(b"QFI\xfb" + bytes(100))
    for args, name in (
        ((qcow, tmp_path / "o.raw", "raw"), "QV_STR_ERR_NOTSUP"),  # qcow2 version 0
        ((src, src, "raw"), "QV_ERR_EXIST"),
        ((src, tmp_path / "o.vmdk", "vmdk"), "QV_ERR_INVAL"),
        ((tmp_path / "missing", tmp_path / "o.raw", "raw"), "QV_ERR_NOENT"),
    ):
        with pytest.raises(QVError) as err:
            es.convert(*args, key_name="host", store=store)
        assert err.value.name == name, args
    # A failed conversion leaves no half-written destination (wrong source key here).
    enc = tmp_path / "e.qvenc"
    es.convert(src, enc, "encrypted", key_name="host", store=store)
    out = tmp_path / "o2.raw"
    with pytest.raises(QVError) as err:
        es.convert(enc, out, "raw", src_key_name="other", store=store)
    assert err.value.name == "PQC_ERR_KEY"
    assert not out.exists()


def test_convert_through_qcow2_checked_by_qemu_img(store, tmp_path: Path) -> None:
    """raw -> qcow2 -> encrypted -> qcow2 -> raw keeps every byte; qemu-img checks our qcow2
    images and reads the same data from them."""
    rng = random.Random(7)
    size = 3 * (1 << 20) + 512
    data = bytearray(size)
    for off in range(0, size, 131072):
        n = min(9000, size - off)
        data[off:off + n] = rng.randbytes(n)
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    q1, enc, q2, back = (tmp_path / n for n in ("a.qcow2", "b.qvenc", "c.qcow2", "d.raw"))
    es.convert(src, q1, "qcow2", store=store)
    es.convert(q1, enc, "encrypted", key_name="host", store=store)
    es.convert(enc, q2, "qcow2", store=store)
    es.convert(q2, back, "raw", store=store)
    assert back.read_bytes() == bytes(data)
    for image in (q1, q2):
        subprocess.run(["qemu-img", "check", "-f", "qcow2", str(image)], check=True,
                       capture_output=True)
        subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(image),
                        str(src)], check=True, capture_output=True)


def test_vm_disk_resolution(make_image, store, tmp_path: Path) -> None:
    enc = make_image(1 << 16, key="big")
    raw = tmp_path / "plain.raw"
    raw.write_bytes(bytes(1 << 16))
    pqc_on = {"storage_encryption": {"enabled": True, "kem": "ML-KEM-1024"}}
    assert es.effective_encryption({"path": str(raw)}) is None
    assert es.effective_encryption({"path": str(raw)}, pqc_on) == {
        "kem": "ML-KEM-1024", "aead": "AES-256-GCM"}
    assert es.effective_encryption({"path": "x", "encrypted": {"aead": "ChaCha20-Poly1305"}},
                                   pqc_on) == {"kem": "ML-KEM-1024",
                                               "aead": "ChaCha20-Poly1305"}
    assert es.open_vm_disk({"path": str(raw)}, 0, store=store) is None
    with pytest.raises(QVError) as err:  # pqc.storage_encryption: a raw disk is refused
        es.open_vm_disk({"path": str(raw)}, 1, pqc_on, store=store)
    assert err.value.name == "QV_STR_ERR_FORMAT" and err.value.path == "storage[1]"
    disk = es.open_vm_disk({"path": str(enc), "readonly": True}, 0, store=store)
    assert disk is not None and disk.size == 1 << 16
    disk.close()
    with pytest.raises(QVError) as err:
        es.open_vm_disk({"path": str(enc), "format": "encrypted",
                         "encrypted": {"kem": "ML-KEM-768"}}, 2, store=store)
    assert err.value.name == "PQC_ERR_ALGORITHM" and err.value.path == "storage[2].encrypted.kem"
    # The host key is gone: a key error at start, naming the disk.
    for suffix in ("json", "key", "pub"):
        (store.dir / f"big.{suffix}").unlink()
    with pytest.raises(QVError) as err:
        es.open_vm_disk({"path": str(enc), "format": "encrypted"}, 3, store=store)
    assert err.value.name == "PQC_ERR_KEY" and err.value.path == "storage[3]"
    assert str(enc) in err.value.message
