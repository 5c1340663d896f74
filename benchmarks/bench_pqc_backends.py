"""The PQC backends side by side: software, the QUAC 100 test device (FUSE, simulated card:
it measures the ioctl path and the copies, with the software implementation doing the math
inside the device) and OpenSSL through `cryptography`, for ML-KEM-768 encaps/decaps and
ML-DSA-65 sign/verify. Run:

    .venv/bin/python -m pytest benchmarks/bench_pqc_backends.py --benchmark-only \\
        --benchmark-group-by=group --benchmark-columns=min,median,mean,ops
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "quac100"))

from quac100_simdev import (  # noqa: E402
    DEVICE_ENV,
    SimDevice,
    build_simulator,
    unavailable_reason,
)

from quantavirt.pqc import KEM, Signature  # noqa: E402

MSG = b"\x5a" * 64


@pytest.fixture(scope="module")
def quac100_device() -> Iterator[str]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"QUAC 100 test device cannot run: {reason}")
    dev = SimDevice(build_simulator())
    mp = pytest.MonkeyPatch()
    mp.setenv(DEVICE_ENV, dev.path)
    yield dev.path
    mp.undo()
    dev.stop()


def _backend(name: str, request: pytest.FixtureRequest) -> str:
    if name == "quac100":
        request.getfixturevalue("quac100_device")
    return name


@pytest.mark.parametrize("backend", ["software", "quac100"])
@pytest.mark.parametrize("op", ["encaps", "decaps"])
def test_mlkem768(benchmark, request: pytest.FixtureRequest, backend: str, op: str) -> None:  # type: ignore[no-untyped-def]
    kem = KEM("ML-KEM-768", backend=_backend(backend, request))
    assert kem.backend == backend
    pk, sk = KEM("ML-KEM-768", backend="software").keygen()
    ct, ss = kem.encaps(pk)
    benchmark.group = f"ML-KEM-768 {op}"
    if op == "encaps":
        c, s = benchmark(kem.encaps, pk)
        assert kem.decaps(sk, c) == s
    else:
        assert benchmark(kem.decaps, sk, ct) == ss


@pytest.mark.parametrize("op", ["encaps", "decaps"])
def test_mlkem768_openssl(benchmark, op: str) -> None:  # type: ignore[no-untyped-def]
    key = mlkem.MLKEM768PrivateKey.generate()
    pub = key.public_key()
    ss, ct = pub.encapsulate()
    benchmark.group = f"ML-KEM-768 {op}"
    if op == "encaps":
        benchmark(pub.encapsulate)
    else:
        assert benchmark(key.decapsulate, ct) == ss


@pytest.mark.parametrize("backend", ["software", "quac100"])
@pytest.mark.parametrize("op", ["sign", "verify"])
def test_mldsa65(benchmark, request: pytest.FixtureRequest, backend: str, op: str) -> None:  # type: ignore[no-untyped-def]
    sig = Signature("ML-DSA-65", backend=_backend(backend, request))
    assert sig.backend == backend
    pk, sk = Signature("ML-DSA-65", backend="software").keygen()
    s = sig.sign(sk, MSG)
    benchmark.group = f"ML-DSA-65 {op}"
    if op == "sign":
        out = benchmark(sig.sign, sk, MSG)
        assert sig.verify(pk, MSG, out)
    else:
        assert benchmark(sig.verify, pk, MSG, s)


@pytest.mark.parametrize("op", ["sign", "verify"])
def test_mldsa65_openssl(benchmark, op: str) -> None:  # type: ignore[no-untyped-def]
    key = mldsa.MLDSA65PrivateKey.generate()
    pub = key.public_key()
    s = key.sign(MSG)
    benchmark.group = f"ML-DSA-65 {op}"
    if op == "sign":
        benchmark(key.sign, MSG)
    else:
        benchmark(pub.verify, s, MSG)
