"""ML-KEM batches on the card: BATCH_SUBMIT / BATCH_STATUS / BATCH_CANCEL against the FUSE test
device, compared with the software backend, and the card's batch faults (a job that answers
late, one that never finishes, wrong counts, no batch capacity, errors, garbage)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from quac100_simdev import DEVICE_ENV, SimDevice

from quantavirt._ffi import ffi, lib
from quantavirt.errors import QVError, code_of
from quantavirt.pqc import KEM

KEMS = ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024")
StartSim = Callable[..., SimDevice]


def _use(dev: SimDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV, dev.path)


@pytest.mark.parametrize("name", KEMS)
def test_batches_match_software(card: SimDevice, name: str) -> None:
    hw, sw = KEM(name, backend="quac100"), KEM(name, backend="software")
    before = card.stats()
    pks, sks = hw.keygen_batch(9)
    cts, sss = hw.encaps_batch(pks)
    assert np.array_equal(sw.decaps_batch(sks, cts), sss)  # card encaps -> software decaps
    cts2, sss2 = sw.encaps_batch(pks)
    assert np.array_equal(hw.decaps_batch(sks, cts2), sss2)  # software encaps -> card decaps
    bad = cts2.copy()
    bad[:, 3] ^= 0x10  # implicit rejection on every row, the same on both
    assert np.array_equal(hw.decaps_batch(sks, bad), sw.decaps_batch(sks, bad))
    after = card.stats()
    # Three kinds of batch, four jobs: one BATCH_SUBMIT each, not one ioctl per item.
    assert after["requests"] - before["requests"] == 4
    assert after["kem_keygen"] - before["kem_keygen"] == 9
    assert after["kem_encaps"] - before["kem_encaps"] == 9
    assert after["kem_decaps"] - before["kem_decaps"] == 18
    assert len({bytes(r) for r in sss}) == 9


def test_jobs_split_at_max_batch_size(start_sim: StartSim, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = start_sim("batch_max=4")
    _use(dev, monkeypatch)
    hw, sw = KEM("ML-KEM-768", backend="quac100"), KEM("ML-KEM-768", backend="software")
    pks, sks = sw.keygen_batch(10)
    before = dev.stats()
    cts, sss = hw.encaps_batch(pks)
    assert dev.stats()["requests"] - before["requests"] == 3  # 4 + 4 + 2
    assert np.array_equal(sw.decaps_batch(sks, cts), sss)


def test_no_batch_capacity_runs_items_one_by_one(start_sim: StartSim,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    dev = start_sim("batch_max=0")
    _use(dev, monkeypatch)
    hw, sw = KEM("ML-KEM-768", backend="quac100"), KEM("ML-KEM-768", backend="software")
    pks, sks = hw.keygen_batch(3)
    cts, sss = hw.encaps_batch(pks)
    assert np.array_equal(sw.decaps_batch(sks, cts), sss)
    assert dev.stats()["requests"] == 6


def test_job_answering_late_is_polled(start_sim: StartSim, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = start_sim("batch_async=5")
    _use(dev, monkeypatch)
    hw, sw = KEM("ML-KEM-768", backend="quac100"), KEM("ML-KEM-768", backend="software")
    pks, sks = sw.keygen_batch(6)
    cts, sss = hw.encaps_batch(pks)
    assert np.array_equal(sw.decaps_batch(sks, cts), sss)
    assert np.array_equal(hw.decaps_batch(sks, cts), sss)


def test_stuck_job_times_out_and_is_cancelled(start_sim: StartSim,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    dev = start_sim("batch_stuck=1")
    _use(dev, monkeypatch)
    monkeypatch.setenv("QUANTAVIRT_QUAC100_BATCH_TIMEOUT_MS", "200")
    sw = KEM("ML-KEM-768", backend="software")
    pks, sks = sw.keygen_batch(3)
    with pytest.raises(QVError) as e:
        KEM("ML-KEM-768", backend="quac100").encaps_batch(pks)
    assert e.value.name == "QUAC100_ERR_TIMEOUT"
    # The card still works for single operations afterwards.
    ct, ss = KEM("ML-KEM-768", backend="quac100").encaps(bytes(pks[0]))
    assert sw.decaps(bytes(sks[0]), ct) == ss


@pytest.mark.parametrize("count", [0, 2, 6, 7, 1 << 31])
def test_wrong_item_counts_are_a_malformed_reply(start_sim: StartSim,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 count: int) -> None:
    # Fewer than the items means "still running": BATCH_STATUS then says DONE with as few.
    dev = start_sim(f"batch_count={count}")
    _use(dev, monkeypatch)
    monkeypatch.setenv("QUANTAVIRT_QUAC100_BATCH_TIMEOUT_MS", "300")
    pks, _ = KEM("ML-KEM-768", backend="software").keygen_batch(5)
    with pytest.raises(QVError) as e:
        KEM("ML-KEM-768", backend="quac100").encaps_batch(pks)
    assert e.value.name == "QUAC100_ERR_REPLY"


@pytest.mark.parametrize("fault, code", [("fail_result=0x10b", "QUAC100_ERR_DEVICE"),
                                         ("fail_result=0x0b", "QUAC100_ERR_BUSY"),
                                         ("fail_errno=5", "QUAC100_ERR_GONE"),
                                         ("no_write=1", "QUAC100_ERR_REPLY")])
def test_card_errors_on_a_batch(start_sim: StartSim, monkeypatch: pytest.MonkeyPatch, fault: str,
                                code: str) -> None:
    dev = start_sim(fault)
    _use(dev, monkeypatch)
    sw = KEM("ML-KEM-768", backend="software")
    pks, sks = sw.keygen_batch(4)
    cts, _ = sw.encaps_batch(pks)
    hw = KEM("ML-KEM-768", backend="quac100")
    for call in (lambda: hw.encaps_batch(pks), lambda: hw.decaps_batch(sks, cts),
                 lambda: hw.keygen_batch(4)):
        with pytest.raises(QVError) as e:
            call()
        assert e.value.name == code


def test_corrupt_keys_from_a_batch_keygen_are_refused(start_sim: StartSim,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    dev = start_sim("corrupt=1")
    _use(dev, monkeypatch)
    with pytest.raises(QVError) as e:
        KEM("ML-KEM-768", backend="quac100").keygen_batch(3)
    assert e.value.name == "QUAC100_ERR_REPLY"


def test_bad_inputs_never_reach_the_card(card: SimDevice) -> None:
    hw, sw = KEM("ML-KEM-768", backend="quac100"), KEM("ML-KEM-768", backend="software")
    pks, sks = sw.keygen_batch(4)
    pks[2, :2] = 0xFF  # a 12-bit value >= q: the modulus check
    sks[1, -40] ^= 1  # H(ek) stored in dk no longer matches: the hash check
    before = card.stats()["requests"]
    with pytest.raises(QVError) as e:
        hw.encaps_batch(pks)
    assert e.value.name == "PQC_ERR_KEY" and e.value.path == "pks[2]"
    cts = np.zeros((4, hw.ciphertext_size), dtype=np.uint8)
    with pytest.raises(QVError) as e:
        hw.decaps_batch(sks, cts)
    assert e.value.name == "PQC_ERR_KEY" and e.value.path == "sks[1]"
    assert card.stats()["requests"] == before


def test_garbage_batch_replies_never_succeed_wrongly(start_sim: StartSim,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sw = KEM("ML-KEM-768", backend="software")
    pks, sks = sw.keygen_batch(4)
    cts, sss = sw.encaps_batch(pks)
    monkeypatch.setenv("QUANTAVIRT_QUAC100_BATCH_TIMEOUT_MS", "100")
    outcomes: dict[str, int] = {}
    for seed in range(1, 9):
        dev = start_sim(f"garbage={seed}")
        _use(dev, monkeypatch)
        hw = KEM("ML-KEM-768", backend="quac100")
        for _ in range(6):
            try:
                got = hw.decaps_batch(sks, cts)
            except QVError as e:
                assert e.name.startswith("QUAC100_ERR_"), e
                outcomes[e.name] = outcomes.get(e.name, 0) + 1
                continue
            # A success is either the honest answer or an uncheckable lie the host cannot see
            # (garbage outputs are random bytes, never all zero).
            outcomes["ok"] = outcomes.get("ok", 0) + 1
            assert got.shape == sss.shape
        dev.stop()
    assert sum(outcomes.values()) == 48
    assert len(outcomes) > 1, outcomes


def test_c_entry_point_reports_the_failing_item(start_sim: StartSim,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    dev = start_sim("fail_result=0x205")
    _use(dev, monkeypatch)
    b = ffi.new("qv_pqc_backend **")
    assert lib.qv_pqc_backend_open(b"quac100", dev.path.encode(), b) == 0
    try:
        sw = KEM("ML-KEM-768", backend="software")
        pks, sks = sw.keygen_batch(3)
        cts, _ = sw.encaps_batch(pks)
        sss = np.full((3, 32), 0xAA, dtype=np.uint8)
        bad = ffi.new("size_t *", 99)
        alg = lib.qv_pqc_algorithm_id(b"ML-KEM-768")
        rc = lib.qv_pqc_kem_decaps_batch(b[0], alg, 3, ffi.from_buffer(sks), ffi.from_buffer(cts),
                                        ffi.from_buffer(sss), bad)
        assert rc == code_of("QUAC100_ERR_DEVICE")
        assert bad[0] == 0
        assert not sss.any()  # nothing of a failed batch is handed out
    finally:
        lib.qv_pqc_backend_close(b[0])
