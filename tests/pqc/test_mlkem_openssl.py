"""ML-KEM agreement with OpenSSL (through `cryptography`, which offers ML-KEM-768 and
ML-KEM-1024) on thousands of random cases in both directions, plus byte-identical public keys
from the same 64-byte seed d || z. `cryptography`'s private key is that seed."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem

from quantavirt.pqc import KEM

OPENSSL = {"ML-KEM-768": mlkem.MLKEM768PrivateKey, "ML-KEM-1024": mlkem.MLKEM1024PrivateKey}
OPENSSL_PUBLIC = {"ML-KEM-768": mlkem.MLKEM768PublicKey, "ML-KEM-1024": mlkem.MLKEM1024PublicKey}
CASES = 2000


@pytest.mark.parametrize("name", sorted(OPENSSL))
def test_same_seed_same_keys_and_both_directions(name: str) -> None:
    kem = KEM(name)
    openssl_key = OPENSSL[name]
    for _ in range(CASES):
        seed = os.urandom(64)
        pk, sk = kem.keygen(seed=seed)
        theirs = openssl_key.from_seed_bytes(seed)
        assert theirs.public_key().public_bytes_raw() == pk
        # ours -> OpenSSL
        ct, ss = kem.encaps(pk)
        assert theirs.decapsulate(ct) == ss
        # OpenSSL -> ours
        ss2, ct2 = theirs.public_key().encapsulate()
        assert kem.decaps(sk, ct2) == ss2


@pytest.mark.parametrize("name", sorted(OPENSSL))
def test_random_keys_both_directions(name: str) -> None:
    """Keys made by each side with its own randomness, the public key crossing over."""
    kem = KEM(name)
    public_cls = OPENSSL_PUBLIC[name]
    for _ in range(CASES // 2):
        theirs = OPENSSL[name].generate()
        ct, ss = kem.encaps(theirs.public_key().public_bytes_raw())
        assert theirs.decapsulate(ct) == ss
        pk, sk = kem.keygen()
        ss2, ct2 = public_cls.from_public_bytes(pk).encapsulate()
        assert kem.decaps(sk, ct2) == ss2


@pytest.mark.parametrize("name", sorted(OPENSSL))
def test_batches_agree_with_openssl(name: str) -> None:
    kem = KEM(name)
    n = 256
    seeds = [os.urandom(64) for _ in range(n)]
    theirs = [OPENSSL[name].from_seed_bytes(s) for s in seeds]
    pks = np.array([list(t.public_key().public_bytes_raw()) for t in theirs], dtype=np.uint8)
    cts, sss = kem.encaps_batch(pks)
    assert cts.shape == (n, kem.ciphertext_size) and sss.shape == (n, 32)
    for t, ct, ss in zip(theirs, cts, sss, strict=True):
        assert t.decapsulate(ct.tobytes()) == ss.tobytes()

    our_pks, our_sks = kem.keygen_batch(n)
    assert our_pks.shape == (n, kem.public_key_size)
    assert our_sks.shape == (n, kem.secret_key_size)
    public_cls = OPENSSL_PUBLIC[name]
    pairs = [public_cls.from_public_bytes(pk.tobytes()).encapsulate() for pk in our_pks]
    their_cts = np.array([list(ct) for _, ct in pairs], dtype=np.uint8)
    got = kem.decaps_batch(our_sks, their_cts)
    assert [g.tobytes() for g in got] == [ss for ss, _ in pairs]
    assert len({pk.tobytes() for pk in our_pks}) == n  # fresh randomness per key
