"""Every official FIPS 204 deterministic pure-signing vector (cryptography-vectors:
kat_MLDSA_{44,65,87}_det_pure.rsp): keys from xi, deterministic signatures, verification."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quantavirt.pqc import Signature

MLDSA_SETS = ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87")


def kat_path(algorithm: str) -> Path:
    import cryptography_vectors

    number = algorithm.rsplit("-", 1)[1]
    return (Path(cryptography_vectors.__file__).parent / "asymmetric" / "MLDSA"
            / f"kat_MLDSA_{number}_det_pure.rsp")


def read_rsp(path: Path) -> Iterator[dict[str, str]]:
    """Records of a NIST-style .rsp file: `key = value` lines, a new record at each `count`."""
    record: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or " = " not in line:
            continue
        key, _, value = line.partition(" = ")
        if key == "count" and record:
            yield record
            record = {}
        record[key] = value
    if record:
        yield record


@pytest.mark.parametrize("algorithm", MLDSA_SETS)
def test_every_kat_vector(algorithm: str) -> None:
    sig = Signature(algorithm)
    vectors = list(read_rsp(kat_path(algorithm)))
    assert len(vectors) == 100
    assert [int(v["count"]) for v in vectors] == list(range(100))
    for v in vectors:
        count = v["count"]
        xi = bytes.fromhex(v["xi"])
        msg = bytes.fromhex(v["msg"])
        ctx = bytes.fromhex(v["ctx"])
        sm = bytes.fromhex(v["sm"])
        assert int(v["mlen"]) == len(msg)
        assert int(v["smlen"]) == len(sm) == sig.signature_size + len(msg)
        expected_sig, tail = sm[: sig.signature_size], sm[sig.signature_size:]
        assert tail == msg, f"vector {count}: sm is not signature || msg"

        pk, sk = sig.keygen(seed=xi)
        assert pk == bytes.fromhex(v["pk"]), f"{algorithm} vector {count}: pk"
        assert sk == bytes.fromhex(v["sk"]), f"{algorithm} vector {count}: sk"
        s = sig.sign(sk, msg, ctx=ctx, deterministic=True)
        assert s == expected_sig, f"{algorithm} vector {count}: signature"
        assert sig.sign_with_randomness(sk, msg, bytes(32), ctx=ctx) == expected_sig
        assert sig.verify(pk, msg, expected_sig, ctx=ctx)
        # The same signature under another context must not verify.
        assert not sig.verify(pk, msg, expected_sig, ctx=ctx + b"\x00")
