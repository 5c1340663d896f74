"""A host secret key whose secret part is damaged (the fingerprint, H(ek) inside the key, does
not cover it) is reported as a key error, not as a changed image header: the key store and the
C open both run the FIPS 203 pair-wise consistency check (encapsulate to the key's own ek,
decapsulate with it). A changed header with the right key stays an integrity error."""

from __future__ import annotations

import random

import pytest

from quantavirt import encrypted_storage as es
from quantavirt.errors import QVError
from quantavirt.keys import KeyStore, key_pair_consistent


@pytest.mark.parametrize("name,kem", [("small", "ML-KEM-512"), ("host", "ML-KEM-768"),
                                      ("big", "ML-KEM-1024")])
def test_damaged_secret_part_is_a_key_error(make_image, store: KeyStore, name: str,
                                            kem: str) -> None:
    image = make_image(1 << 16, key=name)
    _, good = store.load_secret_key(name)
    assert key_pair_consistent(kem, good)
    k = int(kem.split("-")[-1]) // 256
    rng = random.Random(k)
    for _ in range(4):
        bad = bytearray(good)
        pos = rng.randrange(384 * k)             # the secret vector s (dk_PKE)
        bad[pos] ^= 1 << rng.randrange(8)
        assert not key_pair_consistent(kem, bad)
        with pytest.raises(QVError) as err:       # C path, key given directly
            es.EncryptedDisk.open(image, secret_key=bad)
        assert err.value.name == "PQC_ERR_KEY" and "damaged" in err.value.message
        (store.dir / f"{name}.key").write_bytes(bytes(bad))
        with pytest.raises(QVError) as err:       # key store path
            store.load_secret_key(name)
        assert err.value.name == "PQC_ERR_KEY" and "damaged" in err.value.message
        with pytest.raises(QVError) as err:
            es.EncryptedDisk.open(image, store=store)
        assert err.value.name == "PQC_ERR_KEY"
    (store.dir / f"{name}.key").write_bytes(bytes(good))
    es.EncryptedDisk.open(image, store=store).close()


def test_changed_kem_ciphertext_stays_an_integrity_error(make_image, store: KeyStore) -> None:
    image = make_image(1 << 16, key="host")
    with open(image, "r+b") as f:
        f.seek(256 + 500)                          # inside the ML-KEM ciphertext
        byte = f.read(1)[0]
        f.seek(256 + 500)
        f.write(bytes([byte ^ 0x10]))
    with pytest.raises(QVError) as err:
        es.EncryptedDisk.open(image, store=store)
    assert err.value.name == "QV_STR_ERR_INTEGRITY", err.value
