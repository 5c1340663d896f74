"""ML-KEM throughput through the Python API, with OpenSSL (through `cryptography`, ML-KEM-768
and ML-KEM-1024 only) measured in the same run.

    .venv/bin/python -m pytest benchmarks/bench_mlkem.py --benchmark-columns=min,median,ops

Batch rows time one call of n operations; ops/s per operation = n * the reported OPS.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem

from quantavirt.pqc import KEM

NAMES = ["ML-KEM-512", "ML-KEM-768", "ML-KEM-1024"]
OPENSSL = {"ML-KEM-768": mlkem.MLKEM768PrivateKey, "ML-KEM-1024": mlkem.MLKEM1024PrivateKey}
OPS = ["keygen", "encaps", "decaps"]
BATCH_SIZES = [16, 256]


def quantavirt_op(name: str, op: str) -> Callable[[], object]:
    kem = KEM(name, backend="software")
    pk, sk = kem.keygen()
    ct, _ = kem.encaps(pk)
    return {
        "keygen": kem.keygen,
        "encaps": lambda: kem.encaps(pk),
        "decaps": lambda: kem.decaps(sk, ct),
    }[op]


def openssl_op(name: str, op: str) -> Callable[[], object]:
    cls = OPENSSL[name]
    key = cls.generate()
    public = key.public_key()
    _, ct = public.encapsulate()
    return {
        "keygen": lambda: cls.generate().public_key(),  # the public key forces the expansion
        "encaps": public.encapsulate,
        "decaps": lambda: key.decapsulate(ct),
    }[op]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", NAMES)
def test_quantavirt(benchmark, name: str, op: str) -> None:
    benchmark.group = f"{name} {op}"
    benchmark.extra_info.update(impl="quantavirt software", code_path=KEM(name).code_path)
    result = benchmark(quantavirt_op(name, op))
    assert result is not None


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", sorted(OPENSSL))
def test_openssl(benchmark, name: str, op: str) -> None:
    benchmark.group = f"{name} {op}"
    benchmark.extra_info.update(impl="OpenSSL via cryptography")
    result = benchmark(openssl_op(name, op))
    assert result is not None


@pytest.mark.parametrize("n", BATCH_SIZES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", NAMES)
def test_quantavirt_batch(benchmark, name: str, op: str, n: int) -> None:
    kem = KEM(name)
    pks, sks = kem.keygen_batch(n)
    cts, _ = kem.encaps_batch(pks)
    fn = {
        "keygen": lambda: kem.keygen_batch(n),
        "encaps": lambda: kem.encaps_batch(pks),
        "decaps": lambda: kem.decaps_batch(sks, cts),
    }[op]
    benchmark.group = f"{name} {op} batch"
    benchmark.extra_info.update(impl="quantavirt software", batch=n)
    result = benchmark(fn)
    assert result is not None
    stats = benchmark.stats.stats if benchmark.stats else None
    if stats is not None:
        benchmark.extra_info["ops_per_s_per_op"] = round(n / stats.mean)
