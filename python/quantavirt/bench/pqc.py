"""PQC throughput: ops/s for every algorithm x operation x backend x batch size, with OpenSSL
(through the `cryptography` package) measured in the same run where it has the algorithm.

Backends measured: software always; quac100 when a card (or the test device named by
QUANTAVIRT_QUAC100_DEVICE) answers; liboqs when its library loads. Batch size 1 times the
single-operation API; larger sizes time one call of the numpy batch API (the card and liboqs
loop in C, the software backend runs its multi-lane batch code). OpenSSL has no batch API and
is measured at batch size 1 only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from quantavirt.errors import QVError

KEM_ALGORITHMS = ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024")
SIG_ALGORITHMS = ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87")
BATCH_SIZES = (1, 16, 64, 256, 1024)
QUICK_BATCH_SIZES = (1, 16)
MESSAGE = b"\x5a" * 64


@dataclass(frozen=True)
class Result:
    algorithm: str
    operation: str
    backend: str
    batch: int
    ops_per_s: float
    us_per_op: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(call: Callable[[], object], items: int, min_time: float) -> tuple[float, float]:
    """(ops/s, us/op) of `call`, which does `items` operations, run for at least min_time."""
    call()  # warm-up: first-use setup, caches
    calls, start = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
    ops = calls * items
    return ops / elapsed, elapsed / ops * 1e6


def available_backends() -> list[str]:
    """software, plus quac100 and liboqs when they answer."""
    from quantavirt.pqc.backend import liboqs_location, quac100_devices

    found = ["software"]
    if quac100_devices():
        found.append("quac100")
    if liboqs_location() is not None:
        found.append("liboqs")
    return found


def _kem_cells(name: str, backend: str, sizes: tuple[int, ...], min_time: float,
               ) -> list[Result]:
    from quantavirt.pqc import KEM

    kem, ref = KEM(name, backend=backend), KEM(name, backend="software")
    out = []
    biggest = max(sizes)
    pks, sks = ref.keygen_batch(biggest)
    cts, _ = ref.encaps_batch(pks)
    pk, sk, ct = bytes(pks[0]), bytes(sks[0]), bytes(cts[0])
    for n in sizes:
        if n == 1:
            cells = {"keygen": kem.keygen, "encaps": lambda: kem.encaps(pk),
                     "decaps": lambda: kem.decaps(sk, ct)}
        else:
            p, s, c = pks[:n], sks[:n], cts[:n]
            cells = {"keygen": lambda n=n: kem.keygen_batch(n),
                     "encaps": lambda p=p: kem.encaps_batch(p),
                     "decaps": lambda s=s, c=c: kem.decaps_batch(s, c)}
        for op, call in cells.items():
            rate, us = _rate(call, n, min_time)
            out.append(Result(name, op, backend, n, rate, us))
    return out


def _sig_cells(name: str, backend: str, sizes: tuple[int, ...], min_time: float,
               ) -> list[Result]:
    from quantavirt.pqc import Signature

    sig, ref = Signature(name, backend=backend), Signature(name, backend="software")
    out = []
    biggest = max(sizes)
    pks, sks = ref.keygen_batch(biggest)
    msgs = np.tile(np.frombuffer(MESSAGE, dtype=np.uint8), (biggest, 1))
    sigs = ref.sign_batch(sks, msgs)
    pk, sk, s1 = bytes(pks[0]), bytes(sks[0]), bytes(sigs[0])
    for n in sizes:
        if n == 1:
            cells = {"keygen": sig.keygen, "sign": lambda: sig.sign(sk, MESSAGE),
                     "verify": lambda: sig.verify(pk, MESSAGE, s1)}
        else:
            p, s, m, g = pks[:n], sks[:n], msgs[:n], sigs[:n]
            cells = {"keygen": lambda n=n: sig.keygen_batch(n),
                     "sign": lambda s=s, m=m: sig.sign_batch(s, m),
                     "verify": lambda p=p, m=m, g=g: sig.verify_batch(p, m, g)}
        for op, call in cells.items():
            rate, us = _rate(call, n, min_time)
            out.append(Result(name, op, backend, n, rate, us))
    return out


def _openssl_cells(name: str, min_time: float) -> list[Result]:
    """OpenSSL through `cryptography`, for the algorithms it has (not ML-KEM-512)."""
    try:
        from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem
    except ImportError:
        return []
    classes: dict[str, Any] = {
        "ML-KEM-768": getattr(mlkem, "MLKEM768PrivateKey", None),
        "ML-KEM-1024": getattr(mlkem, "MLKEM1024PrivateKey", None),
        "ML-DSA-44": getattr(mldsa, "MLDSA44PrivateKey", None),
        "ML-DSA-65": getattr(mldsa, "MLDSA65PrivateKey", None),
        "ML-DSA-87": getattr(mldsa, "MLDSA87PrivateKey", None),
    }
    cls = classes.get(name)
    if cls is None:
        return []
    key = cls.generate()
    pub = key.public_key()
    if name.startswith("ML-KEM"):
        _, ct = pub.encapsulate()
        cells = {"keygen": cls.generate, "encaps": pub.encapsulate,
                 "decaps": lambda: key.decapsulate(ct)}
    else:
        s = key.sign(MESSAGE)
        cells = {"keygen": cls.generate, "sign": lambda: key.sign(MESSAGE),
                 "verify": lambda: pub.verify(s, MESSAGE)}
    return [Result(name, op, "openssl", 1, *_rate(call, 1, min_time))
            for op, call in cells.items()]


def run(quick: bool = False, algorithms: tuple[str, ...] | None = None,
        backends: list[str] | None = None, min_time: float | None = None) -> list[Result]:
    """Measure everything; `quick` = batch sizes 1 and 16 and a short time per cell."""
    sizes = QUICK_BATCH_SIZES if quick else BATCH_SIZES
    per_cell = min_time if min_time is not None else (0.005 if quick else 0.2)
    names = algorithms or KEM_ALGORITHMS + SIG_ALGORITHMS
    unknown = [a for a in names if a not in KEM_ALGORITHMS + SIG_ALGORITHMS]
    if unknown:
        raise QVError("PQC_ERR_ALGORITHM", f"unknown algorithm {unknown[0]!r}",
                      path="algorithms")
    use = backends or available_backends()
    results: list[Result] = []
    for name in names:
        for backend in use:
            if name in KEM_ALGORITHMS:
                results += _kem_cells(name, backend, sizes, per_cell)
            else:
                results += _sig_cells(name, backend, sizes, per_cell)
        results += _openssl_cells(name, per_cell)
    return results


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    from quantavirt.pqc.backend import auto_backend
    from quantavirt.pqc.kem import KEM

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "auto_backend": auto_backend(),
            "software_code_path": KEM("ML-KEM-768", backend="software").code_path}


def format_table(results: list[Result]) -> str:
    """Rows algorithm / operation / backend, one ops/s column per batch size."""
    sizes = sorted({r.batch for r in results})
    rows: dict[tuple[str, str, str], dict[int, float]] = {}
    for r in results:
        rows.setdefault((r.algorithm, r.operation, r.backend), {})[r.batch] = r.ops_per_s
    head = f"{'algorithm':<12} {'operation':<9} {'backend':<9}" + "".join(
        f" {'x' + str(n):>10}" for n in sizes)
    head += "   (ops/s)"
    lines = [head, "-" * len(head)]
    for (alg, op, backend), cells in rows.items():
        lines.append(f"{alg:<12} {op:<9} {backend:<9}" + "".join(
            f" {cells[n]:>10,.0f}" if n in cells else f" {'-':>10}" for n in sizes))
    return "\n".join(lines)
