"""Host key store, the keys CLI, rekey, and nonce (stamp) uniqueness across sessions."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quantavirt import encrypted_storage as es
from quantavirt.cli import main
from quantavirt.errors import QVError
from quantavirt.keys import KeyStore, parse_public_key_pem

SECTOR = 4096
META = 8192


def test_key_files_private_and_atomic(store: KeyStore) -> None:
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700
    names = sorted(p.name for p in store.dir.iterdir())
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"
    for n in names:
        assert stat.S_IMODE(os.stat(store.dir / n).st_mode) == 0o600, n
    kem, sk = store.load_secret_key("big")
    assert kem == "ML-KEM-1024" and len(sk) == 3168
    os.chmod(store.dir / "big.key", 0o644)
    with pytest.raises(QVError) as err:
        store.load_secret_key("big")
    assert err.value.name == "QV_ERR_PERM"


def test_key_store_errors(store: KeyStore, tmp_path: Path) -> None:
    for kwargs, name in (
        (dict(name="host"), "QV_ERR_EXIST"),
        (dict(name="../evil"), "QV_ERR_INVAL"),
        (dict(name="x", kem="ML-KEM-2048"), "PQC_ERR_ALGORITHM"),
        # no card at that node: a slot key cannot be made
        (dict(name="x", backend="quac100", device=str(tmp_path / "none")), "PQC_ERR_BACKEND"),
        (dict(name="x", backend="hsm"), "PQC_ERR_BACKEND"),
    ):
        with pytest.raises(QVError) as err:
            store.create(**kwargs)
        assert err.value.name == name, kwargs
    with pytest.raises(QVError) as err:
        store.get("nobody")
    assert err.value.name == "QV_ERR_NOENT"
    (store.dir / "other.pub").write_bytes(os.urandom(1184))  # swapped public key file
    with pytest.raises(QVError) as err:
        store.public_key("other")
    assert err.value.name == "PQC_ERR_KEY"


def test_keys_cli_never_prints_the_secret(home: Path, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    assert main(["keys", "create", "--name", "k1", "--kem", "ML-KEM-1024"]) == 0
    assert main(["keys", "create"]) == 0  # name "default", ML-KEM-768
    assert main(["keys", "list"]) == 0
    assert main(["keys", "list", "--json"]) == 0
    assert main(["keys", "export-public", "k1"]) == 0
    out_file = tmp_path / "k1.pem"
    assert main(["keys", "export-public", "k1", "--output", str(out_file)]) == 0
    assert main(["keys", "create", "--name", "k1"]) == 1
    # A slot key needs a card (tests/quac100/test_quac100_key_slots.py has one).
    assert main(["keys", "create", "--name", "q", "--backend", "quac100",
                 "--device", str(tmp_path / "no-such-quac100")]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "QV_ERR_EXIST" in text and "PQC_ERR_BACKEND" in text and "no QUAC 100 card" in text
    assert not (home / "keys" / "q.json").exists()
    store = KeyStore(home)
    for name in ("k1", "default"):
        _, sk = store.load_secret_key(name)
        secret = bytes(sk)
        for needle in (secret.hex()[:64], base64.b64encode(secret)[:48].decode(),
                       secret[:48].hex()):
            assert needle not in text
            assert needle not in out_file.read_text()
    kem, pk = parse_public_key_pem(out_file.read_text())
    assert (kem, pk) == store.public_key("k1")
    assert store.get("k1").fingerprint in text


def test_exported_pem_loads_in_cryptography(store: KeyStore) -> None:
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    for name in ("host", "big"):
        loaded = serialization.load_pem_public_key(store.export_public(name).encode())
        raw = loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert raw == store.public_key(name)[1]


def test_rekey_new_key_opens_old_does_not(make_image, store: KeyStore) -> None:
    path = make_image(64 * SECTOR, key="host")
    payload = os.urandom(64 * SECTOR)
    with es.EncryptedDisk.open(path, "host", store=store) as disk:
        disk.write(0, payload)
    data_before = path.read_bytes()[META:]
    info = es.rekey(path, "host", "big", store=store)  # to another parameter set
    assert info["kem"] == "ML-KEM-1024" and info["host_key"] == "big"
    assert path.read_bytes()[META:] == data_before  # no sector rewritten
    with pytest.raises(QVError) as err:
        es.EncryptedDisk.open(path, "host", store=store)
    assert err.value.name == "PQC_ERR_KEY"
    with es.EncryptedDisk.open(path, store=store) as disk:  # found by fingerprint
        assert disk.read(0, 64 * SECTOR) == payload
    es.rekey(path, "big", "small", store=store)
    with es.EncryptedDisk.open(path, "small", store=store) as disk:
        assert disk.read(0, 64 * SECTOR) == payload
    with pytest.raises(QVError) as err:
        es.rekey(path, "big", "host", store=store)
    assert err.value.name == "PQC_ERR_KEY"


def test_no_stamp_ever_repeats(make_image, store: KeyStore) -> None:
    """Every sealed version of every sector carries a distinct nonce, across reopenings and
    after a writer that stopped without closing (the epoch is taken at open)."""
    path = make_image(8 * SECTOR)
    seen: set[bytes] = set()

    def collect() -> None:
        raw = path.read_bytes()
        for i in range(8):
            rec = raw[META + i * 64:META + i * 64 + 64]
            for slot in (rec[0:12], rec[28:40]):
                if any(slot):
                    seen.add(slot)

    code = (
        "import os, sys\n"
        "from quantavirt import encrypted_storage as es\n"
        "from quantavirt.keys import KeyStore\n"
        "d = es.EncryptedDisk.open(sys.argv[1], 'host', store=KeyStore(sys.argv[2]))\n"
        "for k in range(5):\n"
        "    d.write(((int(sys.argv[3]) + k) % 8) * 4096, os.urandom(4096))\n"
        "os._exit(0)  # no close, no flush: as if the process died\n"
    )
    count = 0
    for session in range(6):
        before = len(seen)
        if session % 2:
            with es.EncryptedDisk.open(path, "host", store=store) as disk:
                for k in range(5):
                    disk.write(((session + k) % 8) * SECTOR, os.urandom(SECTOR))
                    collect()
                    assert len(seen) == before + k + 1, "a nonce was reused"
        else:
            subprocess.run([sys.executable, "-c", code, str(path), str(store.home),
                            str(session)], check=True, timeout=60)
            collect()
        count += 5
        assert len(seen) == before + 5, "a nonce was reused"
        epoch = int.from_bytes(path.read_bytes()[4096 + 8:4096 + 12], "little")
        assert epoch == session + 1
    assert len(seen) == count


def test_rekey_refused_while_open(make_image, store: KeyStore) -> None:
    path = make_image(4 * SECTOR)
    with es.EncryptedDisk.open(path, "host", store=store):
        with pytest.raises(QVError) as err:
            es.rekey(path, "host", "other", store=store)
        assert err.value.name == "QV_ERR_BUSY"
    es.rekey(path, "host", "other", store=store)
    with es.EncryptedDisk.open(path, "other", store=store, readonly=True) as disk:
        assert disk.read(0, SECTOR) == bytes(SECTOR)
