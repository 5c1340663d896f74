"""QUAC 100 key slots against the FUSE test device: ML-KEM pairs generated on the card,
decapsulation with a slot's secret key (which never leaves the card), delete, list, the
checks on every reply, and `quantavirt keys --backend quac100`."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from quac100_simdev import DEVICE_ENV, SimDevice

from quantavirt import encrypted_storage as es
from quantavirt.cli import main
from quantavirt.errors import QVError
from quantavirt.keys import KeyStore, parse_public_key_pem
from quantavirt.pqc import KEM
from quantavirt.pqc.key_slots import KeySlots

KEMS = ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024")
SIM_SLOTS = 16  # SIM_KEY_SLOTS of quac100_sim.c, reported by GET_INFO


def _raises(name: str, fn, *args, **kwargs) -> QVError:  # type: ignore[no-untyped-def]
    with pytest.raises(QVError) as err:
        fn(*args, **kwargs)
    assert err.value.name == name, str(err.value)
    return err.value


@pytest.mark.parametrize("kem", KEMS)
def test_slot_keygen_software_encaps_card_decaps(card: SimDevice, kem: str) -> None:
    slots = KeySlots(card.path)
    slot, pk = slots.generate(kem, label="roundtrip")
    assert 0 <= slot < SIM_SLOTS
    software = KEM(kem, backend="software")
    assert len(pk) == software.public_key_size
    for _ in range(3):
        ct, ss = software.encaps(pk)
        assert slots.decaps(slot, kem, ct) == ss
    # A ciphertext for another key: FIPS 203 implicit rejection, not the sender's secret.
    other_pk, _ = software.keygen()
    ct2, ss2 = software.encaps(other_pk)
    rejected = slots.decaps(slot, kem, ct2)
    assert rejected != ss2 and len(rejected) == 32
    assert slots.public_key(slot, kem) == pk
    assert card.stats()  # the device still answers its control file


def test_list_and_delete(card: SimDevice) -> None:
    slots = KeySlots()  # found through the environment variable
    assert slots.device == card.path and slots.serial.startswith("QVSIM-")
    assert slots.list() == []
    made = [slots.generate(kem, label=f"k{i}") for i, kem in enumerate(KEMS)]
    listed = slots.list()
    assert [(e.slot, e.kem, e.label) for e in listed] == [
        (slot, kem, f"k{i}") for i, ((slot, _), kem) in enumerate(zip(made, KEMS, strict=True))]
    middle = made[1][0]
    slots.delete(middle)
    assert [e.slot for e in slots.list()] == [made[0][0], made[2][0]]
    _raises("QUAC100_ERR_SLOT", slots.delete, middle)
    _raises("QUAC100_ERR_SLOT", slots.public_key, middle, "ML-KEM-768")
    ct, _ = KEM("ML-KEM-768", backend="software").encaps(made[1][1])
    _raises("QUAC100_ERR_SLOT", slots.decaps, middle, "ML-KEM-768", ct)
    # The freed slot is reused by the next pair.
    assert slots.generate("ML-KEM-768")[0] == middle


def test_bad_slot_numbers_and_arguments(card: SimDevice) -> None:
    slots = KeySlots(card.path)
    slot, pk = slots.generate("ML-KEM-768")
    ct, _ = KEM("ML-KEM-768", backend="software").encaps(pk)
    for bad in (SIM_SLOTS, SIM_SLOTS + 1, 0xFFFFFFFF, -1, 1 << 32):
        _raises("QUAC100_ERR_SLOT", slots.decaps, bad, "ML-KEM-768", ct)
        _raises("QUAC100_ERR_SLOT", slots.public_key, bad, "ML-KEM-768")
        _raises("QUAC100_ERR_SLOT", slots.delete, bad)
    # The slot holds ML-KEM-768: asking for another parameter set is not this key.
    _raises("PQC_ERR_KEY", slots.public_key, slot, "ML-KEM-512")
    _raises("PQC_ERR_SIZE", slots.decaps, slot, "ML-KEM-768", ct[:-1])
    _raises("PQC_ERR_ALGORITHM", slots.generate, "ML-KEM-2048")
    _raises("QV_ERR_INVAL", slots.generate, "ML-KEM-768", label="x" * 33)
    _raises("QV_ERR_INVAL", slots.generate, "ML-KEM-768", label="tab\there")
    # Every slot used: the card's own "out of memory", its raw code named.
    for _ in range(SIM_SLOTS - 1):
        slots.generate("ML-KEM-512")
    err = _raises("QUAC100_ERR_DEVICE", slots.generate, "ML-KEM-512")
    assert "0x7" in str(err)
    assert len(slots.list()) == SIM_SLOTS


def test_lying_card_is_caught(card: SimDevice) -> None:
    slots = KeySlots(card.path)
    slots.generate("ML-KEM-768")
    slots.generate("ML-KEM-768")
    # KEY_GENERATE answers a slot number the card does not have; KEY_LIST out of order.
    card.control("slot_reply=99")
    _raises("QUAC100_ERR_REPLY", slots.generate, "ML-KEM-768")
    _raises("QUAC100_ERR_REPLY", slots.list)
    card.control("reset")
    # Outputs never written: an all-zero public key / shared secret is no answer.
    slot, pk = slots.generate("ML-KEM-768")
    ct, _ = KEM("ML-KEM-768", backend="software").encaps(pk)
    card.control("no_write=1")
    _raises("QUAC100_ERR_REPLY", slots.generate, "ML-KEM-768")
    _raises("QUAC100_ERR_REPLY", slots.public_key, slot, "ML-KEM-768")
    _raises("QUAC100_ERR_REPLY", slots.decaps, slot, "ML-KEM-768", ct)
    card.control("reset", "fail_result=0x10b")
    for call in (lambda: slots.generate("ML-KEM-768"), lambda: slots.delete(slot),
                 slots.list, lambda: slots.decaps(slot, "ML-KEM-768", ct)):
        assert "0x10b" in str(_raises("QUAC100_ERR_DEVICE", call))
    card.control("reset", "fail_result=0x7777")  # not in the vendor's table
    _raises("QUAC100_ERR_REPLY", slots.list)
    card.control("reset", "fail_errno=25")  # ENOTTY: a card without key slots
    _raises("QUAC100_ERR_NOTSUP", slots.list)


@pytest.mark.parametrize("seed", range(4))
def test_garbage_replies_give_quac100_errors(card: SimDevice, seed: int) -> None:
    slots = KeySlots(card.path)
    software = KEM("ML-KEM-512", backend="software")
    honest_slot, honest_pk = slots.generate("ML-KEM-512")
    card.control(f"garbage={seed + 1}")
    seen: set[str] = set()
    ok = 0
    for i in range(40):
        try:
            op = i % 4
            if op == 0:
                slot, pk = slots.generate("ML-KEM-512")
                # Only an honest reply gets through: a valid slot and a key that works.
                assert 0 <= slot < SIM_SLOTS
                ct, ss = software.encaps(pk)
            elif op == 1:
                assert slots.public_key(honest_slot, "ML-KEM-512") == honest_pk
            elif op == 2:
                ct, ss = software.encaps(honest_pk)
                got = slots.decaps(honest_slot, "ML-KEM-512", ct)
                assert len(got) == 32 and any(got)
            else:
                for e in slots.list():
                    assert 0 <= e.slot < SIM_SLOTS and e.kem in KEMS
            ok += 1
        except QVError as err:
            assert err.name.startswith("QUAC100_ERR_") or err.name == "PQC_ERR_KEY", str(err)
            seen.add(err.name)
    assert card.alive()
    assert "QUAC100_ERR_REPLY" in seen and ok > 0


def test_keys_cli_with_the_card(card: SimDevice, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("QUANTAVIRT_HOME", str(home))
    assert main(["keys", "create", "--name", "card1", "--backend", "quac100",
                 "--device", card.path]) == 0
    assert main(["keys", "create", "--name", "soft1"]) == 0
    out = capsys.readouterr().out
    assert "key slot 0 of " + card.path in out
    keydir = home / "keys"
    # Only a record and the public key: the secret key is on the card.
    assert sorted(p.name for p in keydir.iterdir() if p.name.startswith("card1")) == [
        "card1.json", "card1.pub"]
    for p in keydir.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    record = json.loads((keydir / "card1.json").read_text())
    assert record["backend"] == "quac100" and record["slot"] == 0
    assert record["device"] == card.path and record["serial"].startswith("QVSIM-")
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "card1" in listing and "quac100" in listing and "soft1" in listing
    assert main(["keys", "list", "--json"]) == 0
    as_json = {k["name"]: k for k in json.loads(capsys.readouterr().out)}
    assert as_json["card1"]["slot"] == 0 and "slot" not in as_json["soft1"]
    assert main(["keys", "export-public", "card1"]) == 0
    kem, pk = parse_public_key_pem(capsys.readouterr().out)
    assert kem == "ML-KEM-768" and pk == KeySlots(card.path).public_key(0, kem)

    store = KeyStore(home)
    for name in ("card1", "soft1"):
        kem, pk = store.public_key(name)
        ct, ss = KEM(kem, backend="software").encaps(pk)
        assert store.decaps(name, ct) == ss
    _raises("QV_ERR_NOTSUP", store.load_secret_key, "card1")
    # The slot emptied behind the store's back.
    KeySlots(card.path).delete(0)
    _raises("QUAC100_ERR_SLOT", store.decaps, "card1", ct)


def test_slot_key_on_another_card(start_sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = start_sim()
    store = KeyStore(tmp_path)
    key = store.create("k", backend="quac100", device=first.path)
    kem, pk = store.public_key("k")
    ct, ss = KEM(kem, backend="software").encaps(pk)
    assert store.decaps("k", ct) == ss
    first.stop()
    # The card is replaced by another one (another serial) at the recorded node; the test
    # device mounts at a fresh directory, so the record is pointed there.
    second = start_sim()
    second_card = KeySlots(second.path)
    second_card.generate(kem)  # its slot 0 is used too, by another key
    record = tmp_path / "keys" / "k.json"
    data = json.loads(record.read_text())
    data["device"] = second.path
    record.write_text(json.dumps(data))
    err = _raises("PQC_ERR_KEY", store.decaps, "k", ct)
    assert key.serial is not None and key.serial in str(err)
    assert second_card.serial in str(err)
    # Without a serial in the record, the public key in the slot still gives it away.
    del data["serial"]
    record.write_text(json.dumps(data))
    assert "no longer holds" in str(_raises("PQC_ERR_KEY", store.decaps, "k", ct))
    # A slot record that was tampered with is refused when read.
    data["slot"] = "zero"
    (tmp_path / "keys" / "k.json").write_text(json.dumps(data))
    _raises("PQC_ERR_KEY", store.get, "k")


def test_encrypted_image_for_a_slot_key(card: SimDevice, tmp_path: Path) -> None:
    """An image wrapped to a slot key opens through the card (the card decapsulates the
    header's KEM ciphertext); the wrong slot, an emptied slot or a failing card refuse it."""
    store = KeyStore(tmp_path / "home")
    store.create("slotkey", kem="ML-KEM-1024", backend="quac100", device=card.path)
    store.create("other", kem="ML-KEM-1024", backend="quac100", device=card.path)
    store.create("other768", backend="quac100", device=card.path)
    image = tmp_path / "disk.qvenc"
    es.create(image, "1M", key_name="slotkey", store=store)
    payload = os.urandom(8192)
    with es.EncryptedDisk.open(image, store=store) as disk:  # found by fingerprint
        disk.write(4096, payload)
    with es.EncryptedDisk.open(image, "slotkey", store=store, readonly=True) as disk:
        assert disk.read(4096, len(payload)) == payload
    assert "another host key" in str(_raises("PQC_ERR_KEY", es.EncryptedDisk.open, image,
                                             "other", store=store))
    assert "does not hold an ML-KEM-1024 key" in str(
        _raises("PQC_ERR_KEY", es.EncryptedDisk.open, image, "other768", store=store))
    card.control("fail_result=0x205")
    _raises("QUAC100_ERR_DEVICE", es.EncryptedDisk.open, image, store=store)
    card.control("reset", "corrupt=1")  # a wrong shared secret: the key wrap does not verify
    _raises("QV_STR_ERR_INTEGRITY", es.EncryptedDisk.open, image, store=store)
    card.control("reset")
    # The path that needs the secret key itself says why it cannot have it: rekey *from* a
    # slot key; rekey *to* one needs only its public key.
    _raises("QV_ERR_NOTSUP", store.load_secret_key, "slotkey")
    store.create("soft")
    _raises("QV_ERR_NOTSUP", es.rekey, image, "slotkey", "soft", store=store)
    moved = tmp_path / "moved.qvenc"
    es.create(moved, "1M", key_name="soft", store=store)
    with es.EncryptedDisk.open(moved, store=store) as disk:
        disk.write(0, payload)
    es.rekey(moved, "soft", "other", store=store)
    with es.EncryptedDisk.open(moved, store=store, readonly=True) as disk:  # via the card
        assert disk.read(0, len(payload)) == payload
    KeySlots(card.path).delete(store.get("slotkey").slot or 0)
    _raises("QUAC100_ERR_SLOT", es.EncryptedDisk.open, image, store=store)
    assert os.environ.get(DEVICE_ENV) == card.path
