"""QUAC 100 key slots: ML-KEM key pairs whose secret key never leaves the card.

    card = KeySlots()                           # the card $QUANTAVIRT_QUAC100_DEVICE names
    slot, pk = card.generate("ML-KEM-768", label="host-default")
    ss = card.decaps(slot, "ML-KEM-768", ct)    # the card decapsulates with the slot's key
    card.public_key(slot, "ML-KEM-768"); card.list(); card.delete(slot)

Every reply is checked in C (csrc/pqc/quac100.c): a bad slot number or an empty slot gives
QUAC100_ERR_SLOT, a reply that does not add up QUAC100_ERR_REPLY, and the card's own error
codes QUAC100_ERR_DEVICE (with the raw result in the message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quantavirt._ffi import c_string, ffi, lib
from quantavirt.errors import QVError
from quantavirt.pqc.backend import NativeBackend
from quantavirt.pqc.kem import ALGORITHMS, KEM, SHARED_SECRET_SIZE

__all__ = ["KeySlots", "SlotEntry", "LABEL_MAX"]

LABEL_MAX = 32


def _alg_id(kem: str) -> int:
    if kem not in ALGORITHMS:
        raise QVError("PQC_ERR_ALGORITHM", f"unknown KEM {kem!r} (one of "
                      f"{', '.join(ALGORITHMS)})", path="kem")
    return int(lib.qv_pqc_algorithm_id(kem.encode()))


def _slot_arg(slot: int) -> int:
    # Negative or > u32 numbers never reach C (cffi would raise OverflowError).
    if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot <= 0xFFFFFFFF:
        raise QVError("QUAC100_ERR_SLOT", f"key slot {slot!r} is not a slot number",
                      path="slot")
    return slot


@dataclass(frozen=True)
class SlotEntry:
    slot: int
    kem: str
    label: str


class KeySlots:
    """The key slots of one QUAC 100 card (an open quac100 backend handle)."""

    def __init__(self, device: str | None = None) -> None:
        self._native = NativeBackend("quac100", device)
        self.device: str = self._native.device
        info = ffi.new("qv_quac100_info *")
        self._native.check(lib.qv_quac100_probe(self.device.encode(), info), "GET_INFO")
        #: The card's serial number: a slot number only means something on this card.
        self.serial: str = c_string(info.serial_number)

    @property
    def native_handle(self) -> Any:
        """The ``qv_pqc_backend *`` (quac100) for C calls such as qv_encdisk_open_slot."""
        return self._native.handle

    def generate(self, kem: str, label: str = "") -> tuple[int, bytes]:
        """A fresh pair in the first free slot: (slot, public key)."""
        alg = _alg_id(kem)
        if len(label) > LABEL_MAX or not label.isascii() or not label.isprintable():
            raise QVError("QV_ERR_INVAL", f"slot label {label!r}: at most {LABEL_MAX} "
                          "printable ASCII characters", path="label")
        size = KEM(kem, backend="software").public_key_size
        slot = ffi.new("uint32_t *")
        pk = ffi.new("uint8_t[]", size)
        rc = lib.qv_quac100_slot_generate(self._native.handle, alg, label.encode(), slot, pk,
                                          size)
        self._native.check(rc, f"{kem} key generation in a key slot")
        return int(slot[0]), bytes(ffi.buffer(pk, size))

    def public_key(self, slot: int, kem: str) -> bytes:
        alg = _alg_id(kem)
        size = KEM(kem, backend="software").public_key_size
        pk = ffi.new("uint8_t[]", size)
        rc = lib.qv_quac100_slot_public_key(self._native.handle, _slot_arg(slot), alg, pk, size)
        self._native.check(rc, f"public key of key slot {slot}", path="slot")
        return bytes(ffi.buffer(pk, size))

    def decaps(self, slot: int, kem: str, ct: bytes | bytearray | memoryview) -> bytes:
        """ML-KEM.Decaps of `ct` with the secret key held in `slot`."""
        alg = _alg_id(kem)
        if not isinstance(ct, bytes | bytearray | memoryview):
            raise QVError("QV_ERR_INVAL", "ciphertext must be bytes", path="ct")
        ss = ffi.new("uint8_t[]", SHARED_SECRET_SIZE)
        ct_buf = ffi.from_buffer(ct)
        rc = lib.qv_quac100_slot_decaps(self._native.handle, _slot_arg(slot), alg, ct_buf,
                                        len(ct_buf), ss, SHARED_SECRET_SIZE)
        self._native.check(rc, f"decapsulation with key slot {slot}", path="slot")
        out = bytes(ffi.buffer(ss, SHARED_SECRET_SIZE))
        ffi.memmove(ss, bytes(SHARED_SECRET_SIZE), SHARED_SECRET_SIZE)
        return out

    def delete(self, slot: int) -> None:
        rc = lib.qv_quac100_slot_delete(self._native.handle, _slot_arg(slot))
        self._native.check(rc, f"deleting key slot {slot}", path="slot")

    def list(self) -> list[SlotEntry]:
        count = ffi.new("int *")
        rc = lib.qv_quac100_slot_list(self._native.handle, ffi.NULL, 0, count)
        self._native.check(rc, "listing key slots")
        n = int(count[0])
        entries = ffi.new("qv_quac100_key_slot[]", max(n, 1))
        rc = lib.qv_quac100_slot_list(self._native.handle, entries, n, count)
        self._native.check(rc, "listing key slots")
        out = []
        for i in range(min(n, int(count[0]))):
            e = entries[i]
            name = c_string(lib.qv_pqc_algorithm_name(e.algorithm))
            out.append(SlotEntry(slot=int(e.slot), kem=name, label=c_string(e.label)))
        return out
