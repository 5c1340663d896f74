"""A QUAC 100 card that answers errors, lies about sizes, ignores the seed, speaks another
interface version or vanishes mid-operation: QUAC100_ERR_* codes, never a crash and never a
wrong result where the host can tell."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from quac100_simdev import DEVICE_ENV, SimDevice

from quantavirt.errors import QVError
from quantavirt.pqc import KEM, Signature
from quantavirt.pqc.backend import auto_backend


def _code(call: Callable[[], object]) -> str:
    with pytest.raises(QVError) as e:
        call()
    return e.value.name


class Material:
    """Keys, ciphertexts and signatures made in software, to feed the card."""

    def __init__(self) -> None:
        kem, sig = KEM("ML-KEM-768", backend="software"), Signature("ML-DSA-65", backend="software")
        self.pk, self.sk = kem.keygen()
        self.ct, self.ss = kem.encaps(self.pk)
        self.spk, self.ssk = sig.keygen()
        self.sig = sig.sign(self.ssk, b"message")


@pytest.fixture(scope="module")
def material() -> Material:
    return Material()


def _operations(m: Material) -> dict[str, Callable[[], object]]:
    kem, sig = KEM("ML-KEM-768", backend="quac100"), Signature("ML-DSA-65", backend="quac100")
    return {
        "kem_keygen": lambda: kem.keygen(),
        "kem_keygen_seed": lambda: kem.keygen(seed=bytes(range(64))),
        "encaps": lambda: kem.encaps(m.pk),
        "decaps": lambda: kem.decaps(m.sk, m.ct),
        "sig_keygen": lambda: sig.keygen(),
        "sign": lambda: sig.sign(m.ssk, b"message"),
        "sign_deterministic": lambda: sig.sign(m.ssk, b"message", deterministic=True),
        "verify": lambda: sig.verify(m.spk, b"message", m.sig),
    }


@pytest.mark.parametrize("result, code", [
    (0x10B, "QUAC100_ERR_DEVICE"),     # HARDWARE_ERROR
    (0x205, "QUAC100_ERR_DEVICE"),     # DECAPSULATION_FAILED
    (0x009, "QUAC100_ERR_TIMEOUT"),
    (0x00B, "QUAC100_ERR_BUSY"),
    (0x008, "QUAC100_ERR_NOTSUP"),
    (0x200, "QUAC100_ERR_NOTSUP"),     # INVALID_ALGORITHM
    (0x1234, "QUAC100_ERR_REPLY"),     # not in the vendor's table
    (-1, "QUAC100_ERR_REPLY"),
])
def test_result_codes(card: SimDevice, material: Material, result: int, code: str) -> None:
    ops = _operations(material)
    card.control(f"fail_result={result}")
    for name, op in ops.items():
        with pytest.raises(QVError) as e:
            op()
        assert e.value.name == code, name
        if code == "QUAC100_ERR_DEVICE":
            assert f"card result {result:#x}" in e.value.message
    card.control("reset")
    for op in ops.values():  # the card works again: errors are per request
        op()


def test_verify_only_zero_means_valid(card: SimDevice, material: Material) -> None:
    sig = Signature("ML-DSA-65", backend="quac100")
    assert sig.verify(material.spk, b"message", material.sig)
    card.control("fail_result=0x206")  # VERIFICATION_FAILED
    assert not sig.verify(material.spk, b"message", material.sig)
    card.control("fail_result=0x204")  # INVALID_SIGNATURE
    assert not sig.verify(material.spk, b"message", material.sig)
    card.control("fail_result=0x10B")  # a card failure is an error, never "invalid"
    assert _code(lambda: sig.verify(material.spk, b"message", material.sig)) == \
        "QUAC100_ERR_DEVICE"


@pytest.mark.parametrize("actual", [0, 100, 3308, 3310, 4627, 2**63])
def test_bad_sig_actual(card: SimDevice, material: Material, actual: int) -> None:
    sig = Signature("ML-DSA-65", backend="quac100")
    card.control(f"sig_actual={actual}")
    assert _code(lambda: sig.sign(material.ssk, b"message")) == "QUAC100_ERR_REPLY"
    card.control("sig_actual=3309")  # the FIPS 204 size: accepted
    assert Signature("ML-DSA-65", backend="software").verify(
        material.spk, b"message", sig.sign(material.ssk, b"message"))


def test_success_without_output(card: SimDevice, material: Material) -> None:
    """result 0 but nothing written: caught (untouched outputs, inconsistent key pairs)."""
    ops = _operations(material)
    card.control("no_write=1")
    for name, op in ops.items():
        if name == "verify":
            continue  # no output buffer; its verdict is the result field
        assert _code(op) == "QUAC100_ERR_REPLY", name


def test_corrupted_key_pairs_and_ignored_seeds(card: SimDevice) -> None:
    kem, sig = KEM("ML-KEM-512", backend="quac100"), Signature("ML-DSA-44", backend="quac100")
    card.control("corrupt=1")  # one flipped byte in every output
    assert _code(kem.keygen) == "QUAC100_ERR_REPLY"
    assert _code(sig.keygen) == "QUAC100_ERR_REPLY"
    card.control("reset", "ignore_seed=1")  # random keys where seeded ones were asked for
    assert _code(lambda: kem.keygen(seed=bytes(64))) == "QUAC100_ERR_REPLY"
    assert _code(lambda: sig.keygen(seed=bytes(32))) == "QUAC100_ERR_REPLY"
    pk, sk = kem.keygen()  # unseeded keygen is fine
    assert len(pk) == 800 and len(sk) == 1632


def test_what_a_lying_card_can_still_do(card: SimDevice, material: Material) -> None:
    """Documented limits (docs/pqc-backends.md): a shared secret or a verdict from the card
    cannot be checked without redoing the work in software."""
    kem_sw = KEM("ML-KEM-768", backend="software")
    kem, sig = KEM("ML-KEM-768", backend="quac100"), Signature("ML-DSA-65", backend="quac100")
    card.control("corrupt=1")
    ct, ss = kem.encaps(material.pk)
    assert kem_sw.decaps(material.sk, ct) != ss
    assert not sig.verify(material.spk, b"message", material.sig)  # a lie, undetected


def test_wrong_interface_version(start_sim, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    dev = start_sim("version=0x00020000")
    monkeypatch.setenv(DEVICE_ENV, dev.path)
    assert _code(lambda: KEM("ML-KEM-768", backend="quac100")) == "QUAC100_ERR_VERSION"
    assert auto_backend() == "software"
    assert KEM("ML-KEM-768").backend == "software"
    dev.control("reset", "info_size=100")  # GET_INFO of another struct layout
    assert _code(lambda: Signature("ML-DSA-65", backend="quac100")) == "QUAC100_ERR_REPLY"
    dev.control("reset")
    assert KEM("ML-KEM-768").backend == "quac100"


@pytest.mark.parametrize("err, code", [
    (errno.ENOTTY, "QUAC100_ERR_NOTSUP"),
    (errno.ETIMEDOUT, "QUAC100_ERR_TIMEOUT"),
    (errno.EBUSY, "QUAC100_ERR_BUSY"),
    (errno.EINVAL, "QUAC100_ERR_IOCTL"),
    (errno.EFAULT, "QUAC100_ERR_IOCTL"),
])
def test_ioctl_errno(card: SimDevice, material: Material, err: int, code: str) -> None:
    kem = KEM("ML-KEM-768", backend="quac100")
    card.control(f"fail_errno={err}")
    assert _code(lambda: kem.decaps(material.sk, material.ct)) == code
    card.control("reset")
    assert kem.decaps(material.sk, material.ct) == material.ss


@pytest.mark.parametrize("err", [errno.EIO, errno.ENODEV, errno.ENXIO])
def test_gone_errno_is_permanent(card: SimDevice, material: Material, err: int) -> None:
    kem = KEM("ML-KEM-768", backend="quac100")
    card.control(f"fail_errno={err}")
    assert _code(lambda: kem.encaps(material.pk)) == "QUAC100_ERR_GONE"
    card.control("reset")
    # the handle stays gone (a vanished device is never trusted again without a re-probe) ...
    assert _code(lambda: kem.decaps(material.sk, material.ct)) == "QUAC100_ERR_GONE"
    assert _code(kem.keygen) == "QUAC100_ERR_GONE"
    # ... and a new object probes the device afresh
    assert KEM("ML-KEM-768", backend="quac100").decaps(material.sk, material.ct) == material.ss


def test_device_vanishes_mid_operation(start_sim, material: Material,  # type: ignore[no-untyped-def]
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    dev = start_sim("exit_after=3")
    monkeypatch.setenv(DEVICE_ENV, dev.path)
    sig = Signature("ML-DSA-65", backend="quac100")
    kem = KEM("ML-KEM-768", backend="quac100")
    s = sig.sign(material.ssk, b"message")
    assert kem.decaps(material.sk, material.ct) == material.ss
    # the third request: the server exits with it in flight
    assert _code(lambda: sig.sign(material.ssk, b"message")) == "QUAC100_ERR_GONE"
    assert dev.proc.wait(timeout=10) == 0  # the server is gone
    assert _code(lambda: sig.verify(material.spk, b"message", s)) == "QUAC100_ERR_GONE"
    assert _code(lambda: kem.decaps(material.sk, material.ct)) == "QUAC100_ERR_GONE"
    # new objects: the dead node no longer answers; auto falls back to software
    assert _code(lambda: KEM("ML-KEM-768", backend="quac100")) == "QUAC100_ERR_OPEN"
    assert KEM("ML-KEM-768").backend == "software"


def test_device_killed_between_operations(start_sim, material: Material,  # type: ignore[no-untyped-def]
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    dev = start_sim()
    monkeypatch.setenv(DEVICE_ENV, dev.path)
    kem = KEM("ML-KEM-1024", backend="quac100")
    pk, sk = kem.keygen()
    dev.kill()
    assert _code(lambda: kem.encaps(pk)) == "QUAC100_ERR_GONE"
    pks = __import__("numpy").zeros((4, 1568), dtype="uint8")
    assert _code(lambda: kem.encaps_batch(pks)) == "QUAC100_ERR_GONE"
