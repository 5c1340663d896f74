"""The quac100 backend against the FUSE test device: every operation compared with the
software backend (byte-identical where deterministic, cross-checked where randomized)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from quac100_simdev import DEVICE_ENV, SimDevice

from quantavirt._ffi import ffi, lib
from quantavirt.errors import QVError
from quantavirt.pqc import KEM, Signature
from quantavirt.pqc.backend import BackendKEM, BackendSignature, auto_backend, quac100_devices

KEMS = ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024")
DSAS = ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87")


def test_device_info_and_auto_selection(card: SimDevice) -> None:
    devices = quac100_devices()
    assert [d.path for d in devices] == [card.path]
    info = devices[0]
    assert info.interface_version == 0x00010000
    assert info.simulator and info.capabilities & 0x80000000
    assert info.device_index == 15 and info.serial_number.startswith("QVSIM-")
    assert auto_backend() == "quac100"
    kem = KEM("ML-KEM-768", backend="auto")
    assert isinstance(kem, KEM) and isinstance(kem, BackendKEM)
    assert kem.backend == "quac100" and kem.code_path == "card" and kem.device == card.path
    assert repr(kem) == "KEM('ML-KEM-768', backend='quac100')"
    sig = Signature("ML-DSA-65", backend="auto")
    assert isinstance(sig, BackendSignature) and sig.backend == "quac100"
    assert Signature("ML-DSA-65", backend="software").backend == "software"


def test_no_device_means_software(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv(DEVICE_ENV, "/nonexistent/quac100_15")
    assert auto_backend() == "software"
    assert KEM("ML-KEM-768").backend == "software"
    with pytest.raises(QVError) as e:
        KEM("ML-KEM-768", backend="quac100")
    assert e.value.name == "PQC_ERR_BACKEND" and "no QUAC 100 card" in e.value.message


@pytest.mark.parametrize("name", KEMS)
def test_kem_matches_software(card: SimDevice, name: str) -> None:
    hw, sw = KEM(name, backend="quac100"), KEM(name, backend="software")
    for i in range(8):
        seed = os.urandom(64)
        pk, sk = hw.keygen(seed=seed)
        assert (pk, sk) == sw.keygen(seed=seed), f"seeded keygen differs (round {i})"
        ct, ss = hw.encaps(pk)  # card encaps -> software decaps
        assert sw.decaps(sk, ct) == ss
        ct2, ss2 = sw.encaps(pk)  # software encaps -> card decaps
        assert hw.decaps(sk, ct2) == ss2
        bad = bytearray(ct2)
        bad[i] ^= 0x40  # implicit rejection: J(z || c) on both
        assert hw.decaps(sk, bytes(bad)) == sw.decaps(sk, bytes(bad)) != ss2
    pk, sk = hw.keygen()  # random keygen on the card: a working pair
    ct, ss = sw.encaps(pk)
    assert sw.decaps(sk, ct) == ss == hw.decaps(sk, ct)
    stats = card.stats()
    assert stats["kem_keygen"] == 9 and stats["kem_encaps"] == 8 and stats["kem_decaps"] == 17


@pytest.mark.parametrize("name", DSAS)
def test_signature_matches_software(card: SimDevice, name: str) -> None:
    hw, sw = Signature(name, backend="quac100"), Signature(name, backend="software")
    for i in range(4):
        xi = os.urandom(32)
        pk, sk = hw.keygen(seed=xi)
        assert (pk, sk) == sw.keygen(seed=xi)
        msg, ctx = os.urandom(1 + 97 * i), os.urandom(i * 20)
        det = hw.sign(sk, msg, ctx=ctx, deterministic=True)
        assert det == sw.sign(sk, msg, ctx=ctx, deterministic=True)
        hedged = hw.sign(sk, msg, ctx=ctx)
        assert sw.verify(pk, msg, hedged, ctx=ctx)
        assert hw.verify(pk, msg, sw.sign(sk, msg, ctx=ctx), ctx=ctx)
        assert hw.verify(pk, msg, det, ctx=ctx)
        assert not hw.verify(pk, msg + b"x", det, ctx=ctx)
        assert not hw.verify(pk, msg, det, ctx=ctx + b"x")
        assert not hw.verify(pk, msg, det[:-1])  # wrong length: False, as in software
    pk, sk = hw.keygen()
    assert sw.verify(pk, b"m", sw.sign(sk, b"m"))


def test_batches_on_the_card(card: SimDevice) -> None:
    hw, sw = KEM("ML-KEM-768", backend="quac100"), KEM("ML-KEM-768", backend="software")
    pks, sks = hw.keygen_batch(5)
    cts, sss = hw.encaps_batch(pks)
    assert np.array_equal(sw.decaps_batch(sks, cts), sss)
    assert np.array_equal(hw.decaps_batch(sks, cts), sss)
    dh, ds = Signature("ML-DSA-44", backend="quac100"), Signature("ML-DSA-44", backend="software")
    seeds = np.frombuffer(os.urandom(3 * 32), dtype=np.uint8).reshape(3, 32)
    pks, sks = dh.keygen_batch(seeds=seeds)
    pks2, sks2 = ds.keygen_batch(seeds=seeds)
    assert np.array_equal(pks, pks2) and np.array_equal(sks, sks2)
    msgs = np.frombuffer(os.urandom(3 * 40), dtype=np.uint8).reshape(3, 40)
    sigs = dh.sign_batch(sks, msgs, ctx=b"c", deterministic=True)
    assert np.array_equal(sigs, ds.sign_batch(sks, msgs, ctx=b"c", deterministic=True))
    sigs[1, 5] ^= 1
    assert dh.verify_batch(pks, msgs, sigs, ctx=b"c").tolist() == [True, False, True]


def _expect(code: str, call: object) -> None:
    with pytest.raises(QVError) as e:
        call()  # type: ignore[operator]
    assert e.value.name == code


def _check_bad_inputs(backend: str) -> None:
    kem = KEM("ML-KEM-768", backend=backend)
    pk, sk = kem.keygen()
    bad_pk = bytearray(pk)
    bad_pk[0:2] = b"\xff\xff"  # coefficient >= q: the FIPS 203 modulus check
    bad_sk = bytearray(sk)
    bad_sk[-40] ^= 1  # H(ek) no longer matches
    ct = kem.encaps(pk)[0]
    _expect("PQC_ERR_KEY", lambda: kem.encaps(bytes(bad_pk)))
    _expect("PQC_ERR_KEY", lambda: kem.decaps(bytes(bad_sk), ct))
    _expect("PQC_ERR_SIZE", lambda: kem.encaps(pk[:-1]))
    _expect("PQC_ERR_SIZE", lambda: kem.keygen(seed=b"short"))
    sig = Signature("ML-DSA-65", backend=backend)
    spk, ssk = sig.keygen()
    _expect("PQC_ERR_CONTEXT", lambda: sig.sign(ssk, b"m", ctx=bytes(256)))
    _expect("PQC_ERR_SIZE", lambda: sig.verify(spk[:-1], b"m", bytes(sig.signature_size)))


def test_bad_input_same_codes_as_software(card: SimDevice) -> None:
    """Inputs are checked on the host before the card sees them, with the software codes."""
    _check_bad_inputs("software")
    before = card.stats()["requests"]
    _check_bad_inputs("quac100")
    # only the two keygens and one encaps reached the card
    assert card.stats()["requests"] - before == 3


def test_diagnostics_through_the_c_interface(card: SimDevice) -> None:
    out = ffi.new("qv_pqc_backend **")
    assert lib.qv_pqc_backend_open(b"quac100", card.path.encode(), out) == 0
    b = ffi.gc(out[0], lib.qv_pqc_backend_close)
    status = ffi.new("uint32_t *")
    assert lib.qv_quac100_status(b, status) == 0 and status[0] == 1
    buf = ffi.new("uint8_t[]", 64)
    assert lib.qv_quac100_random(b, buf, 64) == 0 and bytes(buf) != bytes(64)
    KEM("ML-KEM-512", backend="quac100").keygen()
    counters = ffi.new("uint64_t[10]")
    assert lib.qv_quac100_counters(b, counters) == 0
    assert counters[0] == 1 and counters[6] == 64  # kem_keygen, random_bytes


def test_threads_share_one_card_handle(card: SimDevice) -> None:
    """cffi releases the GIL: several threads drive one handle (one fd) at once."""
    from concurrent.futures import ThreadPoolExecutor

    hw, sw = KEM("ML-KEM-768", backend="quac100"), KEM("ML-KEM-768", backend="software")
    pk, sk = sw.keygen()

    def work(i: int) -> bool:
        ct, ss = hw.encaps(pk)
        return hw.decaps(sk, ct) == ss == sw.decaps(sk, ct)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, range(200)))
    assert card.stats()["kem_encaps"] == 200


def test_threads_when_the_card_vanishes(start_sim, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The device dies under four busy threads: each call succeeds (before) or gives
    QUAC100_ERR_GONE (after), never anything else."""
    from concurrent.futures import ThreadPoolExecutor

    dev = start_sim("exit_after=150")
    monkeypatch.setenv(DEVICE_ENV, dev.path)
    hw, sw = KEM("ML-KEM-512", backend="quac100"), KEM("ML-KEM-512", backend="software")
    pk, sk = sw.keygen()

    def work(i: int) -> str:
        try:
            ct, ss = hw.encaps(pk)
        except QVError as e:
            return e.name
        assert sw.decaps(sk, ct) == ss
        return "ok"

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(300)))
    assert set(results) == {"ok", "QUAC100_ERR_GONE"}
    assert results.count("ok") == 149 and results[-1] == "QUAC100_ERR_GONE"
