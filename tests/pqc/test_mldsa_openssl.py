"""Agreement with OpenSSL's ML-DSA (through `cryptography`) on thousands of random cases in
both directions: same seed -> byte-identical public keys; our signatures verify under
OpenSSL and OpenSSL's under ours, with random contexts and messages; a changed context or
message is rejected by both. (`cryptography` only signs hedged, so byte-identical
deterministic signatures are checked against the official vectors in test_mldsa_kat.py.)"""

from __future__ import annotations

import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa

from quantavirt.pqc import Signature

OPENSSL = {
    "ML-DSA-44": (mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey),
    "ML-DSA-65": (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey),
    "ML-DSA-87": (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey),
}
CASES_PER_SET = 1000


def openssl_verifies(public_key: object, signature: bytes, msg: bytes, ctx: bytes) -> bool:
    try:
        public_key.verify(signature, msg, ctx)  # type: ignore[attr-defined]
    except InvalidSignature:
        return False
    return True


@pytest.mark.parametrize("algorithm", list(OPENSSL))
def test_random_cases_both_directions(algorithm: str) -> None:
    private_cls, public_cls = OPENSSL[algorithm]
    sig = Signature(algorithm)
    rng = random.Random(f"mldsa-openssl-{algorithm}")
    for case in range(CASES_PER_SET):
        xi = rng.randbytes(32)
        msg = rng.randbytes(rng.choice((0, 1, 32, rng.randrange(0, 2048))))
        ctx = rng.randbytes(rng.choice((0, 1, 255, rng.randrange(0, 256))))
        deterministic = case % 2 == 0

        pk, sk = sig.keygen(seed=xi)
        theirs = private_cls.from_seed_bytes(xi)
        their_pub = theirs.public_key()
        assert their_pub.public_bytes_raw() == pk, f"case {case}: public key differs"
        assert public_cls.from_public_bytes(pk).public_bytes_raw() == pk

        ours = sig.sign(sk, msg, ctx=ctx, deterministic=deterministic)
        assert len(ours) == sig.signature_size
        assert openssl_verifies(their_pub, ours, msg, ctx), f"case {case}: OpenSSL rejects ours"

        their_sig = theirs.sign(msg, ctx)
        assert sig.verify(pk, msg, their_sig, ctx=ctx), f"case {case}: we reject OpenSSL's"

        # Both sides reject a different context and a different message.
        other_ctx = ctx[:-1] if ctx else b"x"
        assert not sig.verify(pk, msg, their_sig, ctx=other_ctx)
        assert not openssl_verifies(their_pub, ours, msg, other_ctx)
        other_msg = msg + b"\x00"
        assert not sig.verify(pk, other_msg, their_sig, ctx=ctx)
        assert not openssl_verifies(their_pub, ours, other_msg, ctx)


@pytest.mark.parametrize("algorithm", list(OPENSSL))
def test_openssl_generated_keys_and_batches(algorithm: str) -> None:
    """Random OpenSSL keys (no seed shared with us): their batch of signatures verifies
    through verify_batch, and ours from sign_batch verifies under OpenSSL."""
    import numpy as np

    private_cls, _ = OPENSSL[algorithm]
    sig = Signature(algorithm)
    rng = random.Random(f"mldsa-openssl-batch-{algorithm}")
    n, m = 64, 48
    keys = [private_cls.generate() for _ in range(n)]
    seeds = np.frombuffer(b"".join(k.private_bytes_raw() for k in keys), dtype=np.uint8)
    pks, sks = sig.keygen_batch(seeds=seeds.reshape(n, 32))
    for i, key in enumerate(keys):
        assert bytes(pks[i]) == key.public_key().public_bytes_raw()
    msgs = np.frombuffer(rng.randbytes(n * m), dtype=np.uint8).reshape(n, m)
    ctx = b"batch-context"
    theirs = np.frombuffer(b"".join(k.sign(bytes(msgs[i]), ctx) for i, k in enumerate(keys)),
                           dtype=np.uint8).reshape(n, sig.signature_size)
    assert sig.verify_batch(pks, msgs, theirs, ctx=ctx).all()
    ours = sig.sign_batch(sks, msgs, ctx=ctx)
    for i, key in enumerate(keys):
        assert openssl_verifies(key.public_key(), bytes(ours[i]), bytes(msgs[i]), ctx)
