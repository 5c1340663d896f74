"""ML-DSA keygen / sign / verify through the Python API, side by side with OpenSSL (through
`cryptography`) in the same run. Run:

    .venv/bin/python -m pytest benchmarks/bench_mldsa.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,ops

Groups are "<set> <operation>", each with a quantavirt and an openssl entry; batch entries
time sign_batch / verify_batch of 64 items (divide by 64 for the per-item cost)."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import mldsa

from quantavirt.pqc import Signature

OPENSSL = {
    "ML-DSA-44": mldsa.MLDSA44PrivateKey,
    "ML-DSA-65": mldsa.MLDSA65PrivateKey,
    "ML-DSA-87": mldsa.MLDSA87PrivateKey,
}
MSG = b"\x5a" * 64
CTX = b"qv-bench"
BATCH = 64


@pytest.mark.parametrize("algorithm", list(OPENSSL))
@pytest.mark.parametrize("op", ["keygen", "sign", "verify"])
def test_quantavirt(benchmark: pytest.FixtureRequest, algorithm: str, op: str) -> None:
    sig = Signature(algorithm, backend="software")
    pk, sk = sig.keygen(seed=bytes(32))
    s = sig.sign(sk, MSG, ctx=CTX)
    benchmark.group = f"{algorithm} {op}"
    benchmark.name = f"quantavirt {algorithm} {op}"
    if op == "keygen":
        benchmark(sig.keygen)
    elif op == "sign":
        out = benchmark(sig.sign, sk, MSG, ctx=CTX)
        assert sig.verify(pk, MSG, out, ctx=CTX)
    else:
        assert benchmark(sig.verify, pk, MSG, s, ctx=CTX)


@pytest.mark.parametrize("algorithm", list(OPENSSL))
@pytest.mark.parametrize("op", ["keygen", "sign", "verify"])
def test_openssl(benchmark: pytest.FixtureRequest, algorithm: str, op: str) -> None:
    cls = OPENSSL[algorithm]
    key = cls.from_seed_bytes(bytes(32))
    pub = key.public_key()
    s = key.sign(MSG, CTX)
    benchmark.group = f"{algorithm} {op}"
    benchmark.name = f"openssl {algorithm} {op}"
    if op == "keygen":
        benchmark(lambda: cls.generate().public_key())
    elif op == "sign":
        benchmark(key.sign, MSG, CTX)
    else:
        benchmark(pub.verify, s, MSG, CTX)


@pytest.mark.parametrize("algorithm", list(OPENSSL))
@pytest.mark.parametrize("op", ["sign_batch", "verify_batch"])
def test_quantavirt_batch(benchmark: pytest.FixtureRequest, algorithm: str, op: str) -> None:
    sig = Signature(algorithm)
    pks, sks = sig.keygen_batch(BATCH)
    msgs = np.tile(np.frombuffer(MSG, dtype=np.uint8), (BATCH, 1))
    sigs = sig.sign_batch(sks, msgs, ctx=CTX)
    benchmark.group = f"{algorithm} {op.split('_')[0]}"
    benchmark.name = f"quantavirt {algorithm} {op} x{BATCH}"
    if op == "sign_batch":
        benchmark(sig.sign_batch, sks, msgs, ctx=CTX)
    else:
        assert benchmark(sig.verify_batch, pks, msgs, sigs, ctx=CTX).all()
