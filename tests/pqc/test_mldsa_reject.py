"""Verification rejects every tampering: each single bit flip of the signature, message,
context and public key; non-canonical hint encodings; wrong lengths; oversized contexts."""

from __future__ import annotations

import numpy as np
import pytest

from quantavirt.errors import QVError
from quantavirt.pqc import Signature

MLDSA_SETS = ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87")
# FIPS 204 Table 1: lambda/4 (c~ bytes), omega and k, to locate the hint encoding.
LAYOUT = {"ML-DSA-44": (32, 80, 4), "ML-DSA-65": (48, 55, 6), "ML-DSA-87": (64, 75, 8)}
MSG = b"QuantaVirt attestation report"
CTX = b"qv-attest"


@pytest.fixture(scope="module", params=MLDSA_SETS)
def signed(request: pytest.FixtureRequest) -> tuple[Signature, bytes, bytes, bytes]:
    sig = Signature(request.param)
    pk, sk = sig.keygen(seed=bytes(range(32)))
    s = sig.sign(sk, MSG, ctx=CTX, deterministic=True)
    assert sig.verify(pk, MSG, s, ctx=CTX)
    return sig, pk, sk, s


def all_bit_flips(data: bytes) -> np.ndarray:
    """(8 len, len) array: row i is `data` with bit i flipped."""
    n = len(data)
    base = np.frombuffer(data, dtype=np.uint8)
    out = np.tile(base, (8 * n, 1))
    idx = np.arange(8 * n)
    out[idx, idx // 8] ^= (1 << (idx % 8)).astype(np.uint8)
    return out


def test_every_signature_bit_flip_rejected(signed: tuple[Signature, bytes, bytes, bytes]) -> None:
    sig, pk, _, s = signed
    flipped = all_bit_flips(s)
    n = flipped.shape[0]
    pks = np.tile(np.frombuffer(pk, dtype=np.uint8), (n, 1))
    msgs = np.tile(np.frombuffer(MSG, dtype=np.uint8), (n, 1))
    ok = sig.verify_batch(pks, msgs, flipped, ctx=CTX)
    assert ok.shape == (n,)
    assert not ok.any(), f"bit flips accepted at {np.flatnonzero(ok)[:10]}"


def test_every_public_key_bit_flip_rejected(
        signed: tuple[Signature, bytes, bytes, bytes]) -> None:
    sig, pk, _, s = signed
    flipped = all_bit_flips(pk)
    n = flipped.shape[0]
    sigs = np.tile(np.frombuffer(s, dtype=np.uint8), (n, 1))
    msgs = np.tile(np.frombuffer(MSG, dtype=np.uint8), (n, 1))
    assert not sig.verify_batch(flipped, msgs, sigs, ctx=CTX).any()


def test_every_message_and_context_bit_flip_rejected(
        signed: tuple[Signature, bytes, bytes, bytes]) -> None:
    sig, pk, _, s = signed
    flipped = all_bit_flips(MSG)
    n = flipped.shape[0]
    pks = np.tile(np.frombuffer(pk, dtype=np.uint8), (n, 1))
    sigs = np.tile(np.frombuffer(s, dtype=np.uint8), (n, 1))
    assert not sig.verify_batch(pks, flipped, sigs, ctx=CTX).any()
    for row in all_bit_flips(CTX):
        assert not sig.verify(pk, MSG, s, ctx=row.tobytes())
    # Context and message are separated: moving bytes between them changes M'.
    assert not sig.verify(pk, CTX[-1:] + MSG, s, ctx=CTX[:-1])
    assert not sig.verify(pk, MSG, s, ctx=b"")


def hint_section(sig: Signature, s: bytes) -> tuple[int, int, int]:
    ctilde, omega, k = LAYOUT[sig.algorithm]
    assert len(s) == sig.signature_size
    start = sig.signature_size - (omega + k)
    return start, omega, k


def rows_of_hints(s: bytes, start: int, omega: int, k: int) -> list[list[int]]:
    y = s[start:]
    rows, first = [], 0
    for i in range(k):
        end = y[omega + i]
        rows.append(list(y[first:end]))
        first = end
    return rows


def encode_hints(rows: list[list[int]], omega: int, k: int) -> bytes:
    """HintBitPack without the canonical-form guarantees (for building malformed cases)."""
    out = bytearray(omega + k)
    idx = 0
    for i, row in enumerate(rows):
        for j in row:
            out[idx] = j
            idx += 1
        out[omega + i] = idx
    return bytes(out)


def signature_with_hints(sig: Signature, sk: bytes, pk: bytes,
                         need: int) -> tuple[bytes, list[list[int]]]:
    """A valid signature whose hint rows hold at least `need` indices in one row and room
    (below omega) for one more."""
    for attempt in range(2000):
        msg = MSG + attempt.to_bytes(4, "little")
        s = sig.sign(sk, msg, ctx=CTX, deterministic=True)
        start, omega, k = hint_section(sig, s)
        rows = rows_of_hints(s, start, omega, k)
        if max(len(r) for r in rows) >= need and sum(len(r) for r in rows) < omega:
            assert encode_hints(rows, omega, k) == s[start:]
            return s, rows
    pytest.fail("no signature with enough hints")


def test_non_canonical_hints_rejected(signed: tuple[Signature, bytes, bytes, bytes]) -> None:
    """Each mutation keeps the decoded hint set (or its meaning) the same, so only the strict
    HintBitUnpack checks can catch it: a verifier without them would accept."""
    sig, pk, sk, _ = signed
    s, rows = signature_with_hints(sig, sk, pk, need=2)
    start, omega, k = hint_section(sig, s)
    msg = None
    for attempt in range(2000):  # recover the message that signature_with_hints used
        candidate = MSG + attempt.to_bytes(4, "little")
        if sig.verify(pk, candidate, s, ctx=CTX):
            msg = candidate
            break
    assert msg is not None
    r = next(i for i, row in enumerate(rows) if len(row) >= 2)

    def verify_with(new_rows: list[list[int]] | None = None, raw: bytes | None = None) -> bool:
        tail = raw if raw is not None else encode_hints(new_rows or rows, omega, k)
        return sig.verify(pk, msg, s[:start] + tail, ctx=CTX)

    assert verify_with(rows)  # the re-encoding itself is exact
    # Indices out of order within a row (same set).
    swapped = [list(row) for row in rows]
    swapped[r][0], swapped[r][1] = swapped[r][1], swapped[r][0]
    assert not verify_with(swapped)
    # A repeated index (same set once deduplicated).
    repeated = [list(row) for row in rows]
    repeated[r].insert(0, repeated[r][0])
    assert not verify_with(repeated)
    # Non-zero padding after the last index.
    canonical = bytearray(encode_hints(rows, omega, k))
    used = sum(len(row) for row in rows)
    canonical[used] = 1
    assert not verify_with(raw=bytes(canonical))
    # A count above omega, and counts that decrease.
    over = bytearray(encode_hints(rows, omega, k))
    over[omega + k - 1] = omega + 1
    assert not verify_with(raw=bytes(over))
    decreasing = bytearray(encode_hints(rows, omega, k))
    if r + 1 < k:
        decreasing[omega + r], decreasing[omega + r + 1] = (decreasing[omega + r + 1],
                                                            decreasing[omega + r])
        assert not verify_with(raw=bytes(decreasing))


def test_wrong_lengths(signed: tuple[Signature, bytes, bytes, bytes]) -> None:
    sig, pk, sk, s = signed
    # A signature of the wrong length is simply invalid.
    for bad in (b"", s[:-1], s + b"\x00", s[: sig.signature_size // 2]):
        assert sig.verify(pk, MSG, bad, ctx=CTX) is False
    # Keys and seeds of the wrong size are caller errors.
    for call in (lambda: sig.verify(pk[:-1], MSG, s, ctx=CTX),
                 lambda: sig.verify(pk + b"\x00", MSG, s, ctx=CTX),
                 lambda: sig.sign(sk[:-1], MSG),
                 lambda: sig.sign(sk + b"\x00", MSG),
                 lambda: sig.keygen(seed=bytes(31)),
                 lambda: sig.keygen(seed=bytes(33))):
        with pytest.raises(QVError) as info:
            call()
        assert info.value.name == "PQC_ERR_SIZE"


def test_context_limit(signed: tuple[Signature, bytes, bytes, bytes]) -> None:
    sig, pk, sk, _ = signed
    s = sig.sign(sk, MSG, ctx=bytes(255))
    assert sig.verify(pk, MSG, s, ctx=bytes(255))
    with pytest.raises(QVError) as info:
        sig.sign(sk, MSG, ctx=bytes(256))
    assert info.value.name == "PQC_ERR_CONTEXT"
    with pytest.raises(QVError) as info:
        sig.verify(pk, MSG, s, ctx=bytes(256))
    assert info.value.name == "PQC_ERR_CONTEXT"
