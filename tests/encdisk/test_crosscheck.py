"""The format re-implemented with the `cryptography` package: ML-KEM decapsulation, HKDF over
SHA3-256, the key wrap, the header and epoch MACs, the record check and the sector AEAD all
agree with the C data path, in both directions."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from quantavirt import encrypted_storage as es
from quantavirt._ffi import ffi, lib
from quantavirt.pqc.kem import KEM

SECTOR = 4096
META = 8192
RECORD = 64
AEADS = {"AES-256-GCM": (1, AESGCM), "ChaCha20-Poly1305": (2, ChaCha20Poly1305)}
KEMS = {768: mlkem.MLKEM768PrivateKey, 1024: mlkem.MLKEM1024PrivateKey}


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA3_256(), length=32, salt=salt, info=info).derive(ikm)


def hmac_sha3(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA3_256())
    h.update(data)
    return h.finalize()


class PyImage:
    """The format, read with `cryptography` only (and the private key)."""

    def __init__(self, path: Path, priv: object) -> None:
        self.raw = bytearray(path.read_bytes())
        h = bytes(self.raw[:4096])
        assert h[:8] == b"QVENCDSK"
        self.uuid = h[24:40]
        self.aead = int.from_bytes(h[42:44], "little")
        self.vsize = int.from_bytes(h[48:56], "little")
        ct_len = int.from_bytes(h[56:60], "little")
        kem_ct = h[256:256 + ct_len]
        ss = priv.decapsulate(kem_ct)  # type: ignore[attr-defined]
        kek = hkdf(ss, self.uuid, b"quantavirt encdisk v1 key wrap")
        self.data_key = AESGCM(kek).decrypt(bytes(12), h[96:144], h[:96] + kem_ct)
        mac_key = hkdf(self.data_key, self.uuid, b"quantavirt encdisk v1 header mac")
        assert hmac_sha3(mac_key, h[:4064]) == h[4064:]
        epoch_blk = bytes(self.raw[4096:8192])
        assert epoch_blk[:8] == b"QVEPOCH1"
        assert hmac_sha3(mac_key, self.uuid + epoch_blk[:4064]) == epoch_blk[4064:]
        self.epoch = int.from_bytes(epoch_blk[8:12], "little")
        name = [k for k, v in AEADS.items() if v[0] == self.aead][0]
        self.cipher = AEADS[name][1](hkdf(self.data_key, self.uuid,
                                          b"quantavirt encdisk v1 sector key " + name.encode()))
        self.record_key = hkdf(self.data_key, self.uuid, b"quantavirt encdisk v1 record mac")
        n = (self.vsize + SECTOR - 1) // SECTOR
        self.data_off = META + (n * RECORD + SECTOR - 1) // SECTOR * SECTOR

    def check(self, i: int, rec: bytes) -> bytes:
        """One slot in use: its tag's first 8 bytes; both in use: keyed SHA3-256."""
        used = [s for s in (rec[0:28], rec[28:56]) if any(s)]
        if len(used) == 1:
            return used[0][12:20]
        key = self.record_key + i.to_bytes(8, "little") + rec[:56]
        return hashlib.sha3_256(key).digest()[:8]

    def read_sector(self, i: int) -> bytes:
        rec = bytes(self.raw[META + i * RECORD:META + (i + 1) * RECORD])
        assert rec[56:] == self.check(i, rec)
        slots = [rec[0:28], rec[28:56]]
        newest = max(slots, key=lambda s: s[:12])
        assert newest[:4] == self.epoch.to_bytes(4, "big")  # nonce = epoch || sequence
        assert min(slots, key=lambda s: s[:12]) == bytes(28)  # old entry removed
        ct = bytes(self.raw[self.data_off + i * SECTOR:self.data_off + (i + 1) * SECTOR])
        return self.cipher.decrypt(newest[:12], ct + newest[12:28],
                                   self.uuid + i.to_bytes(8, "little"))

    def seal_sector(self, i: int, plaintext: bytes, stamp: bytes) -> tuple[bytes, bytes]:
        sealed = self.cipher.encrypt(stamp, plaintext, self.uuid + i.to_bytes(8, "little"))
        rec = stamp + sealed[-16:] + bytes(28)
        return sealed[:-16], rec + self.check(i, rec)


def create_for(path: Path, level: int, aead: str, pk: bytes) -> None:
    err = ffi.new("char[256]")
    rc = lib.qv_disk_create_encrypted(str(path).encode(), 64 * SECTOR, level, AEADS[aead][0],
                                      pk, len(pk), 0, err, 256)
    assert rc == 0, ffi.string(err)


@pytest.mark.parametrize("level", [768, 1024])
@pytest.mark.parametrize("aead", list(AEADS))
def test_python_reads_what_c_wrote(tmp_path: Path, level: int, aead: str) -> None:
    priv = KEMS[level].generate()
    pk = priv.public_key().public_bytes_raw()
    pk_ours, sk = KEM(f"ML-KEM-{level}").keygen(seed=priv.private_bytes_raw())
    assert pk_ours == pk  # the same FIPS 203 key from the same 64-byte seed
    path = tmp_path / "x.qvenc"
    create_for(path, level, aead, pk)
    plain = {i: os.urandom(SECTOR) for i in (0, 1, 17, 63)}
    with es.EncryptedDisk.open(path, secret_key=sk) as disk:
        for i, p in plain.items():
            disk.write(i * SECTOR, b"\xee" * SECTOR)  # an older version first
            disk.write(i * SECTOR, p)
    img = PyImage(path, priv)
    for i, p in plain.items():
        assert img.read_sector(i) == p
    # The data key never appears in the file.
    assert bytes(img.raw).find(img.data_key) == -1


@pytest.mark.parametrize("aead", list(AEADS))
def test_c_reads_what_python_sealed(tmp_path: Path, aead: str) -> None:
    priv = mlkem.MLKEM768PrivateKey.generate()
    pk = priv.public_key().public_bytes_raw()
    _, sk = KEM("ML-KEM-768").keygen(seed=priv.private_bytes_raw())
    path = tmp_path / "y.qvenc"
    create_for(path, 768, aead, pk)
    img = PyImage(path, priv)
    plaintext = os.urandom(SECTOR)
    sealed, rec = img.seal_sector(9, plaintext, (7).to_bytes(4, "big") + (3).to_bytes(8, "big"))
    with open(path, "r+b") as f:
        f.seek(img.data_off + 9 * SECTOR)
        f.write(sealed)
        f.seek(META + 9 * RECORD)
        f.write(rec)
    with es.EncryptedDisk.open(path, secret_key=sk, readonly=True) as disk:
        assert disk.read(9 * SECTOR, SECTOR) == plaintext
    # A pending record (a write in flight): the newer entry is this data, the older one is
    # some other version; the check is then the keyed SHA3-256 one.
    newer, rec2 = img.seal_sector(9, plaintext, (8).to_bytes(4, "big") + (1).to_bytes(8, "big"))
    pending = rec2[:28] + rec[:28]
    pending += img.check(9, pending)
    with open(path, "r+b") as f:
        f.seek(img.data_off + 9 * SECTOR)
        f.write(newer)
        f.seek(META + 9 * RECORD)
        f.write(pending)
    with es.EncryptedDisk.open(path, secret_key=sk, readonly=True) as disk:
        assert disk.read(9 * SECTOR, SECTOR) == plaintext
    with open(path, "r+b") as f:  # the older entry's data under the same pending record
        f.seek(img.data_off + 9 * SECTOR)
        f.write(sealed)
    with es.EncryptedDisk.open(path, secret_key=sk, readonly=True) as disk:
        assert disk.read(9 * SECTOR, SECTOR) == plaintext
    with open(path, "r+b") as f:  # a wrong keyed check is refused
        f.seek(META + 9 * RECORD + 56)
        f.write(bytes(8))
    with es.EncryptedDisk.open(path, secret_key=sk, readonly=True) as disk:
        with pytest.raises(Exception, match="sector 9 .*record"):
            disk.read(9 * SECTOR, SECTOR)
    # The same sealed sector placed at another index is refused (AAD binds the position).
    with open(path, "r+b") as f:
        f.seek(img.data_off + 10 * SECTOR)
        f.write(sealed)
        f.seek(META + 10 * RECORD)
        f.write(rec[:56] + img.check(10, rec))
    with es.EncryptedDisk.open(path, secret_key=sk, readonly=True) as disk:
        with pytest.raises(Exception, match="sector 10 "):
            disk.read(10 * SECTOR, SECTOR)
