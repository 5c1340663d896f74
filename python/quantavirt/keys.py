"""Host ML-KEM key pairs: the keys encrypted disks are wrapped to.

Keys live in ``$QUANTAVIRT_HOME/keys/`` (``QUANTAVIRT_HOME`` defaults to
``/var/lib/quantavirt``), one pair per name::

    NAME.json   metadata: name, kem, backend, fingerprint, created      (0600)
    NAME.pub    the FIPS 203 encapsulation key (public key), raw bytes  (0600)
    NAME.key    the FIPS 203 decapsulation key (secret key), raw bytes  (0600)

The directory is 0700. Every file is written atomically (temporary file, fsync, rename, fsync
of the directory), so a crash never leaves half a key. The secret key is only ever read by
:func:`load_secret_key` for opening a disk; it is never printed.

The fingerprint is SHA3-256 of the public key, the value an encrypted image's header records.

``backend="quac100"`` keeps the pair in a key slot of a QUAC 100 card instead
(:mod:`quantavirt.pqc.key_slots`): the secret key never leaves the card, and the state
directory holds only NAME.json (with the slot number, device path and card serial) and
NAME.pub. :meth:`KeyStore.decaps` decapsulates with either kind of key, and
``EncryptedDisk.open`` opens an image wrapped to a slot key through the card
(qv_encdisk_open_slot; the VM launcher, convert and check open disks that way).
:meth:`KeyStore.load_secret_key` gives QV_ERR_NOTSUP for a slot key: the one path that needs
the secret key itself (rekey *from* a slot key) cannot use one yet.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from quantavirt.errors import QVError
from quantavirt.pqc.kem import ALGORITHMS, KEM
from quantavirt.pqc.key_slots import LABEL_MAX, KeySlots

__all__ = [
    "HostKey",
    "KeyStore",
    "quantavirt_home",
    "fingerprint",
    "public_key_pem",
    "parse_public_key_pem",
    "wipe",
]

DEFAULT_HOME = "/var/lib/quantavirt"
DEFAULT_KEM = "ML-KEM-768"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# NIST object identifiers of ML-KEM (id-alg-ml-kem-*, 2.16.840.1.101.3.4.4.1..3), DER-encoded.
_OIDS: dict[str, bytes] = {
    "ML-KEM-512": bytes.fromhex("0609608648016503040401"),
    "ML-KEM-768": bytes.fromhex("0609608648016503040402"),
    "ML-KEM-1024": bytes.fromhex("0609608648016503040403"),
}


def quantavirt_home() -> Path:
    return Path(os.environ.get("QUANTAVIRT_HOME", DEFAULT_HOME))


def fingerprint(public_key: bytes) -> str:
    """SHA3-256 of the public key, hex: what an encrypted image's header records."""
    return hashlib.sha3_256(public_key).hexdigest()


def wipe(buf: bytearray) -> None:
    """Overwrite a secret held in a bytearray (Python copies of ``bytes`` cannot be wiped)."""
    buf[:] = bytes(len(buf))


def key_pair_consistent(kem: str, secret_key: bytes | bytearray) -> bool:
    """FIPS 203 pair-wise consistency of a decapsulation key: encapsulate to the encapsulation
    key it embeds and decapsulate with it. Catches a damaged secret part, which the
    fingerprint (H(ek), also inside dk) does not cover. The shared secrets are throwaway."""
    engine = KEM(kem, backend="software")
    k = ALGORITHMS[kem] // 256
    ek = bytes(secret_key[384 * k:768 * k + 32])
    try:
        ct, ss = engine.encaps(ek)
        return engine.decaps(secret_key, ct) == ss
    except QVError:
        return False


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def public_key_pem(kem: str, public_key: bytes) -> str:
    """A SubjectPublicKeyInfo "PUBLIC KEY" PEM with the NIST ML-KEM algorithm identifier."""
    algid = b"\x30" + _der_len(len(_OIDS[kem])) + _OIDS[kem]
    bitstring = b"\x03" + _der_len(len(public_key) + 1) + b"\x00" + public_key
    body = algid + bitstring
    der = b"\x30" + _der_len(len(body)) + body
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def parse_public_key_pem(text: str) -> tuple[str, bytes]:
    """(kem, public key) from :func:`public_key_pem` output; QV_ERR_INVAL for anything else."""
    m = re.search(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", text, re.S)
    if m is None:
        raise QVError("QV_ERR_INVAL", "no PUBLIC KEY PEM block")
    try:
        der = base64.b64decode("".join(m.group(1).split()), validate=True)
    except ValueError as exc:
        raise QVError("QV_ERR_INVAL", f"bad base64 in the PEM block: {exc}") from None
    for kem, oid in _OIDS.items():
        algid = b"\x30" + _der_len(len(oid)) + oid
        size = KEM(kem).public_key_size
        bitstring = b"\x03" + _der_len(size + 1) + b"\x00"
        body_len = len(algid) + len(bitstring) + size
        prefix = b"\x30" + _der_len(body_len) + algid + bitstring
        if der.startswith(prefix) and len(der) == len(prefix) + size:
            return kem, der[len(prefix):]
    raise QVError("QV_ERR_INVAL", "not an ML-KEM-512/768/1024 SubjectPublicKeyInfo")


@dataclass(frozen=True)
class HostKey:
    """Metadata of one host key pair (no secret in here)."""

    name: str
    kem: str
    backend: str
    fingerprint: str
    created: str
    #: quac100 keys only: where the secret key lives.
    slot: int | None = None
    device: str | None = None
    serial: str | None = None

    def to_dict(self) -> dict[str, str | int]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write, fsync, rename over `path`, fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class KeyStore:
    """The host key directory."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home) if home is not None else quantavirt_home()
        self.dir = self.home / "keys"

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise QVError("QV_ERR_INVAL", f"key name {name!r}: use 1-64 letters, digits, '.', "
                          "'_' or '-', starting with a letter or digit", path="name")

    def _ensure_dir(self) -> None:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except PermissionError as exc:
            raise QVError("QV_ERR_PERM", f"cannot create {self.dir}: {exc.strerror}") from None
        os.chmod(self.dir, 0o700)

    def create(self, name: str = "default", kem: str = DEFAULT_KEM,
               backend: str = "software", device: str | None = None) -> HostKey:
        """Generate and store a new key pair; QV_ERR_EXIST if the name is taken. For
        backend="quac100", `device` is the card's node (None: the usual search)."""
        self._check_name(name)
        if kem not in ALGORITHMS:
            raise QVError("PQC_ERR_ALGORITHM", f"unknown KEM {kem!r} (one of "
                          f"{', '.join(ALGORITHMS)})", path="kem")
        if backend not in ("software", "quac100"):
            raise QVError("PQC_ERR_BACKEND", f"unknown key backend {backend!r} (software, "
                          "quac100)", path="backend")
        self._ensure_dir()
        if (self.dir / f"{name}.json").exists():
            raise QVError("QV_ERR_EXIST", f"host key {name!r} already exists", path="name")
        if backend == "quac100":
            return self._create_in_slot(name, kem, device)
        pk, sk = KEM(kem).keygen()
        secret = bytearray(sk)
        del sk
        meta = HostKey(name=name, kem=kem, backend=backend, fingerprint=fingerprint(pk),
                       created=_now())
        try:
            _atomic_write(self.dir / f"{name}.key", bytes(secret))
        finally:
            wipe(secret)
        _atomic_write(self.dir / f"{name}.pub", pk)
        # The metadata file is written last: a key "exists" once it is there.
        _atomic_write(self.dir / f"{name}.json",
                      (json.dumps(meta.to_dict(), indent=2) + "\n").encode())
        return meta

    def _create_in_slot(self, name: str, kem: str, device: str | None) -> HostKey:
        card = KeySlots(device)
        slot, pk = card.generate(kem, label=name[:LABEL_MAX])
        meta = HostKey(name=name, kem=kem, backend="quac100", fingerprint=fingerprint(pk),
                       created=_now(), slot=slot, device=card.device, serial=card.serial)
        try:
            _atomic_write(self.dir / f"{name}.pub", pk)
            _atomic_write(self.dir / f"{name}.json",
                          (json.dumps(meta.to_dict(), indent=2) + "\n").encode())
        except BaseException:
            card.delete(slot)  # no record: the slot would be lost to everyone
            raise
        return meta

    def card_for(self, key: HostKey) -> tuple[KeySlots, int]:
        """The open card holding a quac100 key, checked to be the card it was made on and to
        still hold this very public key in the slot."""
        if key.slot is None or not key.device:
            raise QVError("PQC_ERR_KEY", f"host key {key.name!r}: quac100 record without a "
                          "slot or device")
        card = KeySlots(key.device)
        if key.serial and card.serial != key.serial:
            raise QVError("PQC_ERR_KEY", f"host key {key.name!r} lives on the QUAC 100 card "
                          f"{key.serial}, but {key.device} is card {card.serial}",
                          path="device")
        if fingerprint(card.public_key(key.slot, key.kem)) != key.fingerprint:
            raise QVError("PQC_ERR_KEY", f"key slot {key.slot} of {key.device} no longer holds "
                          f"host key {key.name!r}", path="slot")
        return card, key.slot

    def decaps(self, name: str, ct: bytes | bytearray) -> bytes:
        """ML-KEM.Decaps with host key `name`: on the card for a slot key, else in software."""
        key = self.get(name)
        if key.backend == "quac100":
            card, slot = self.card_for(key)
            return card.decaps(slot, key.kem, ct)
        kem, sk = self.load_secret_key(name)
        try:
            return KEM(kem, backend="software").decaps(sk, ct)
        finally:
            wipe(sk)

    def get(self, name: str) -> HostKey:
        self._check_name(name)
        path = self.dir / f"{name}.json"
        try:
            data = json.loads(path.read_text())
            fields = {f: str(data[f]) for f in ("name", "kem", "backend", "fingerprint",
                                                 "created")}
            slot = data.get("slot")
            if slot is not None and (not isinstance(slot, int) or isinstance(slot, bool)
                                     or slot < 0):
                raise ValueError(f"slot {slot!r} is not a slot number")
            key = HostKey(**fields, slot=slot,
                          device=None if data.get("device") is None else str(data["device"]),
                          serial=None if data.get("serial") is None else str(data["serial"]))
        except FileNotFoundError:
            raise QVError("QV_ERR_NOENT", f"no host key {name!r} in {self.dir}",
                          path="name") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise QVError("PQC_ERR_KEY", f"host key metadata {path} is damaged: {exc}") from None
        if key.kem not in ALGORITHMS:
            raise QVError("PQC_ERR_KEY", f"host key {name!r} has unknown KEM {key.kem!r}")
        return key

    def list(self) -> list[HostKey]:
        if not self.dir.is_dir():
            return []
        return [self.get(p.stem) for p in sorted(self.dir.glob("*.json"))
                if _NAME_RE.match(p.stem)]

    def find_by_fingerprint(self, fp: str) -> HostKey | None:
        """The stored key whose public key has this SHA3-256 fingerprint (hex), if any."""
        for key in self.list():
            if key.fingerprint == fp.lower():
                return key
        return None

    def public_key(self, name: str) -> tuple[str, bytes]:
        """(kem, public key bytes), checked against the recorded fingerprint."""
        key = self.get(name)
        pk = (self.dir / f"{name}.pub").read_bytes()
        if fingerprint(pk) != key.fingerprint or len(pk) != KEM(key.kem).public_key_size:
            raise QVError("PQC_ERR_KEY", f"public key of {name!r} does not match its metadata")
        return key.kem, pk

    def load_secret_key(self, name: str) -> tuple[str, bytearray]:
        """(kem, secret key) for opening a disk; wipe the bytearray after use."""
        key = self.get(name)
        if key.backend == "quac100":
            raise QVError("QV_ERR_NOTSUP", f"host key {name!r} lives in key slot {key.slot} "
                          f"of the QUAC 100 card {key.device}; its secret key never leaves the "
                          "card (EncryptedDisk.open and KeyStore.decaps use the card; this path "
                          "needs the secret key itself and cannot use a slot key yet)")
        if key.backend != "software":
            raise QVError("PQC_ERR_KEY", f"host key {name!r} has unknown backend "
                          f"{key.backend!r}")
        path = self.dir / f"{name}.key"
        st = path.stat()
        if st.st_mode & 0o077:
            raise QVError("QV_ERR_PERM", f"{path} is readable by others (mode "
                          f"{st.st_mode & 0o777:o}); it must be 0600")
        sk = bytearray(st.st_size)
        with open(path, "rb", buffering=0) as f:
            got = f.readinto(sk)
        expected = KEM(key.kem).secret_key_size
        if got != expected or st.st_size != expected:
            wipe(sk)
            raise QVError("PQC_ERR_KEY", f"secret key of {name!r} has the wrong size")
        # FIPS 203: dk carries H(ek) at [len-64, len-32): it must be this key's fingerprint.
        if sk[-64:-32].hex() != key.fingerprint:
            wipe(sk)
            raise QVError("PQC_ERR_KEY", f"secret key of {name!r} does not match its metadata")
        if not key_pair_consistent(key.kem, sk):
            wipe(sk)
            raise QVError("PQC_ERR_KEY", f"secret key of {name!r} ({path}) is damaged: the "
                          "ML-KEM pair-wise consistency check failed")
        return key.kem, sk

    def export_public(self, name: str) -> str:
        kem, pk = self.public_key(name)
        return public_key_pem(kem, pk)
