"""The PQC-encrypted disk format from Python: create, open, rekey, info, convert.

    from quantavirt import encrypted_storage as es
    es.create("/var/lib/quantavirt/images/db.qvenc", "20G", aead="AES-256-GCM", key_name="host")
    with es.EncryptedDisk.open("/var/lib/quantavirt/images/db.qvenc", key_name="host") as disk:
        disk.write(0, b"x" * 4096)
    es.rekey(path, old_key="host", new_key="host-2025")     # new KEM wrap, data untouched
    es.info(path)                                           # algorithms, sizes; never a key
    es.convert("disk.raw", "disk.qvenc", "encrypted", key_name="host", progress=print)

The data path is C (csrc/disk/encrypted.c); the format is docs/encrypted-disk-format.md.
Formats convert understands here: raw and encrypted, both ways. qcow2 needs the qcow2 backend
(csrc/disk/qcow2*.c), which is not part of this tree yet: QV_STR_ERR_NOTSUP until then.
"""

from __future__ import annotations

import os
import uuid as uuid_mod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quantavirt import storage
from quantavirt._ffi import c_string, ffi, lib
from quantavirt.config.sizes import format_size, parse_size
from quantavirt.errors import QVError
from quantavirt.keys import HostKey, KeyStore, wipe
from quantavirt.pqc.kem import ALGORITHMS

__all__ = [
    "AEADS",
    "KEMS",
    "EncryptedDisk",
    "create",
    "rekey",
    "info",
    "convert",
    "detect_format",
    "disk_key_for",
    "effective_encryption",
    "open_vm_disk",
]

KEMS: dict[str, int] = dict(ALGORITHMS)
AEADS: dict[str, int] = {
    "AES-256-GCM": lib.QV_ENCDISK_AEAD_AES_256_GCM,
    "ChaCha20-Poly1305": lib.QV_ENCDISK_AEAD_CHACHA20_POLY1305,
}
SECTOR_SIZE: int = lib.QV_ENCDISK_SECTOR_SIZE
HEADER_SIZE: int = lib.QV_ENCDISK_HEADER_SIZE
MAGIC = b"QVENCDSK"
QCOW2_MAGIC = b"QFI\xfb"
CACHE_MODES = {"writeback": 0, "none": 1, "writethrough": 2, "directsync": 3}
CONVERT_CHUNK = 1 << 20

ProgressCallback = Callable[[int, int], None]

_ERRLEN = 512


def _errbuf() -> Any:
    return ffi.new(f"char[{_ERRLEN}]")


def _raise(rc: int, errbuf: Any, path: str | None = None) -> None:
    if rc != 0:
        raise QVError(rc, c_string(errbuf) or None, path=path)


def _size_of(size: int | str) -> int:
    if isinstance(size, int):
        return size
    try:
        return parse_size(size)
    except ValueError as exc:
        raise QVError("QV_ERR_INVAL", str(exc), path="size") from None


def _kem_name(level: int) -> str:
    return f"ML-KEM-{level}"


def _aead_name(code: int) -> str:
    for name, value in AEADS.items():
        if value == code:
            return name
    return f"unknown({code})"


def cpu_has_aes(cpuinfo: str | None = None) -> bool:
    """Does this CPU have AES-NI (the "aes" flag of /proc/cpuinfo)?"""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return "aes" in line.split(":", 1)[1].split()
    return False


def default_aead(cpuinfo: str | None = None) -> str:
    """AES-256-GCM where the CPU has AES-NI, ChaCha20-Poly1305 where it does not."""
    return "AES-256-GCM" if cpu_has_aes(cpuinfo) else "ChaCha20-Poly1305"


def _parse_aead(aead: str) -> int:
    for name, value in AEADS.items():
        if name.lower() == aead.lower():
            return value
    raise QVError("PQC_ERR_ALGORITHM", f"unknown AEAD {aead!r} (one of {', '.join(AEADS)})",
                  path="aead")


def read_header_fields(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header's plain fields (not authenticated: that needs the key; see :func:`info`)."""
    try:
        with open(path, "rb") as f:
            h = f.read(HEADER_SIZE)
    except FileNotFoundError:
        raise QVError("QV_ERR_NOENT", f"no such image {path}", path=str(path)) from None
    if h[:8] != MAGIC:
        raise QVError("QV_STR_ERR_FORMAT", f"{path} is not an encrypted image", path=str(path))
    if len(h) < HEADER_SIZE:
        raise QVError("QV_STR_ERR_CORRUPT", f"{path}: header truncated", path=str(path))

    def u(off: int, n: int) -> int:
        return int.from_bytes(h[off:off + n], "little")

    return {
        "version": u(8, 4),
        "flags": u(16, 8),
        "uuid": str(uuid_mod.UUID(bytes=h[24:40])),
        "kem": _kem_name(u(40, 2)),
        "aead": _aead_name(u(42, 2)),
        "sector_size": u(44, 4),
        "virtual_size": u(48, 8),
        "key_fingerprint": h[64:96].hex(),
    }


def detect_format(path: str | os.PathLike[str]) -> str:
    """"encrypted", "qcow2" or "raw", from the first bytes of the image."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise QVError("QV_ERR_NOENT", f"no such image {path}", path=str(path)) from None
    if head == MAGIC:
        return "encrypted"
    if head[:4] == QCOW2_MAGIC:
        return "qcow2"
    return "raw"


def disk_key_for(path: str | os.PathLike[str], key_name: str | None = None,
                 store: KeyStore | None = None) -> tuple[str, bytearray]:
    """(kem, secret key) that opens the image: the named host key, or the stored key whose
    fingerprint the header records. PQC_ERR_KEY, naming the disk, when there is none.
    The caller wipes the returned secret."""
    store = store or KeyStore()
    if key_name is None:
        fp = read_header_fields(path)["key_fingerprint"]
        key = store.find_by_fingerprint(fp)
        if key is None:
            raise QVError("PQC_ERR_KEY", f"no host key in {store.dir} opens {path} (it is "
                          f"wrapped to the key with fingerprint SHA3-256:{fp})", path=str(path))
        key_name = key.name
    return store.load_secret_key(key_name)


def _slot_key_for(path: str, key_name: str | None, store: KeyStore) -> HostKey | None:
    """The host key that opens the image when it lives in a QUAC 100 key slot, else None."""
    if key_name is None:
        key = store.find_by_fingerprint(read_header_fields(path)["key_fingerprint"])
    else:
        key = store.get(key_name)
    return key if key is not None and key.backend == "quac100" else None


class EncryptedDisk:
    """An open encrypted image (the C backend); use as a context manager."""

    def __init__(self, handle: Any, path: str) -> None:
        self._h = handle
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str], key_name: str | None = None, *,
             secret_key: bytes | bytearray | None = None, readonly: bool = False,
             cache: str = "writeback", store: KeyStore | None = None) -> EncryptedDisk:
        """Open with a host key by name, with the stored key matching the image, or with an
        explicit FIPS 203 secret key."""
        path = os.fspath(path)
        if cache not in CACHE_MODES:
            raise QVError("QV_ERR_INVAL", f"cache {cache!r} (one of {', '.join(CACHE_MODES)})",
                          path="cache")
        owned: bytearray | None = None
        if secret_key is None:
            slot_key = _slot_key_for(path, key_name, store or KeyStore())
            if slot_key is not None:
                return cls._open_through_card(path, slot_key, readonly, cache,
                                              store or KeyStore())
            _, owned = disk_key_for(path, key_name, store)
            secret_key = owned
        out = ffi.new("struct qv_disk **")
        err = _errbuf()
        try:
            rc = lib.qv_encdisk_open(path.encode(), int(readonly), CACHE_MODES[cache],
                                     ffi.from_buffer(secret_key), len(secret_key), out, err,
                                     _ERRLEN)
        finally:
            if owned is not None:
                wipe(owned)
        _raise(rc, err, path)
        return cls(out[0], path)

    @classmethod
    def _open_through_card(cls, path: str, key: HostKey, readonly: bool, cache: str,
                           store: KeyStore) -> EncryptedDisk:
        """The card holding `key` decapsulates the image's KEM ciphertext; the data key is
        unwrapped in the core and the secret key never reaches the host."""
        card, slot = store.card_for(key)
        out = ffi.new("struct qv_disk **")
        err = _errbuf()
        rc = lib.qv_encdisk_open_slot(path.encode(), int(readonly), CACHE_MODES[cache],
                                      card.native_handle, slot, out, err, _ERRLEN)
        _raise(rc, err, path)
        return cls(out[0], path)  # the data key is in the core now: the card is not needed

    def _handle(self) -> Any:
        if self._h is None:
            raise QVError("QV_ERR_STATE", "the disk is closed", path=self.path)
        return self._h

    @property
    def handle(self) -> Any:
        """The ``struct qv_disk *`` for C consumers (virtio-blk); valid until close()."""
        return self._handle()

    @property
    def size(self) -> int:
        return int(lib.qv_encdisk_size(self._handle()))

    @property
    def last_error(self) -> str:
        return c_string(lib.qv_disk_encrypted_last_error(self._handle()))

    def _check(self, rc: int) -> None:
        if rc != 0:
            raise QVError(rc, self.last_error or None, path=self.path)

    def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        self.readinto(offset, buf)
        return bytes(buf)

    def readinto(self, offset: int, buf: bytearray | memoryview) -> None:
        self._check(lib.qv_encdisk_read(self._handle(), offset, ffi.from_buffer(buf), len(buf)))

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._check(lib.qv_encdisk_write(self._handle(), offset, ffi.from_buffer(data),
                                         len(data)))

    def write_zeroes(self, offset: int, length: int) -> None:
        self._check(lib.qv_encdisk_write_zeroes(self._handle(), offset, length))

    def flush(self) -> None:
        self._check(lib.qv_encdisk_flush(self._handle()))

    def close(self) -> None:
        if self._h is not None:
            lib.qv_encdisk_close(self._h)
            self._h = None

    def __enter__(self) -> EncryptedDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def create(path: str | os.PathLike[str], size: int | str, kem: str | None = None,
           aead: str | None = None, key_name: str = "default", *,
           preallocate: bool = False, store: KeyStore | None = None) -> dict[str, Any]:
    """Create an encrypted image wrapped to host key ``key_name``. ``kem`` (optional) must be
    the key's parameter set; ``aead`` defaults to :func:`default_aead` (AES-256-GCM with
    AES-NI, else ChaCha20-Poly1305). ``preallocate`` seals every sector now (slower to create; an
    erased sector record is then detected, see the format document)."""
    path = os.fspath(path)
    nbytes = _size_of(size)
    store = store or KeyStore()
    try:
        key_kem, pk = store.public_key(key_name)
    except QVError as err:
        if err.name != "QV_ERR_NOENT":
            raise
        hint = f" --kem {kem}" if kem else ""
        raise QVError("QV_ERR_NOENT", f"no host key {key_name!r} in {store.dir}: create one "
                      f"with `quantavirt keys create --name {key_name}{hint}`",
                      path="key") from None
    if kem is not None and kem != key_kem:
        if kem not in KEMS:
            raise QVError("PQC_ERR_ALGORITHM", f"unknown KEM {kem!r} (one of "
                          f"{', '.join(KEMS)})", path="kem")
        raise QVError("PQC_ERR_ALGORITHM", f"host key {key_name!r} is {key_kem}, not {kem}: "
                      f"create one with `quantavirt keys create --name NAME --kem {kem}`",
                      path="kem")
    err = _errbuf()
    flags = lib.QV_ENCDISK_CREATE_PREALLOCATE if preallocate else 0
    rc = lib.qv_disk_create_encrypted(path.encode(), nbytes, KEMS[key_kem],
                                      _parse_aead(aead or default_aead()),
                                      pk, len(pk), flags, err, _ERRLEN)
    _raise(rc, err, path)
    return info(path, store=store)


def rekey(path: str | os.PathLike[str], old_key: str, new_key: str, *,
          store: KeyStore | None = None) -> dict[str, Any]:
    """Wrap the image's data key to ``new_key`` (its own ML-KEM parameter set); the sectors
    are not rewritten. Afterwards only ``new_key`` opens the image."""
    path = os.fspath(path)
    store = store or KeyStore()
    new_kem, pk = store.public_key(new_key)
    _, sk = store.load_secret_key(old_key)
    err = _errbuf()
    try:
        rc = lib.qv_disk_rekey_encrypted(path.encode(), ffi.from_buffer(sk), len(sk),
                                         KEMS[new_kem], pk, len(pk), err, _ERRLEN)
    finally:
        wipe(sk)
    _raise(rc, err, path)
    return info(path, store=store)


def info(path: str | os.PathLike[str], *, verify: bool = False,
         store: KeyStore | None = None) -> dict[str, Any]:
    """What `storage info` shows: format, algorithms, sizes, which host key opens it. Never a
    key. With ``verify`` the header is authenticated with that host key (read-only open)."""
    path = os.fspath(path)
    store = store or KeyStore()
    fields = read_header_fields(path)
    st = os.stat(path)
    key = store.find_by_fingerprint(fields["key_fingerprint"])
    result: dict[str, Any] = {
        "path": path,
        "format": "encrypted",
        "encrypted": True,
        "format_version": fields["version"],
        "uuid": fields["uuid"],
        "kem": fields["kem"],
        "aead": fields["aead"],
        "kdf": "HKDF-SHA3-256",
        "sector_size": fields["sector_size"],
        "virtual_size": fields["virtual_size"],
        "virtual_size_text": format_size(fields["virtual_size"]),
        "actual_size": st.st_blocks * 512,
        "file_size": st.st_size,
        "preallocated": bool(fields["flags"] & 1),
        "key_fingerprint": "SHA3-256:" + fields["key_fingerprint"],
        "host_key": key.name if key else None,
    }
    if verify:
        with EncryptedDisk.open(path, key.name if key else None, readonly=True, store=store):
            pass
        result["verified"] = True
    return result


class _RawFile:
    def __init__(self, path: str, size: int | None = None) -> None:
        self.path = path
        if size is None:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self.size = os.fstat(self.fd).st_size
        else:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            os.ftruncate(self.fd, size)
            self.size = size

    def readinto(self, offset: int, buf: memoryview) -> None:
        n = os.preadv(self.fd, [buf], offset)
        if n < len(buf):  # past the end of a raw file whose size is not a sector multiple
            buf[n:] = bytes(len(buf) - n)

    def write(self, offset: int, data: memoryview) -> None:
        while data:
            n = os.pwrite(self.fd, data, offset)
            data, offset = data[n:], offset + n

    def flush(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def convert(src: str | os.PathLike[str], dst: str | os.PathLike[str], fmt: str, *,
            src_format: str | None = None, key_name: str | None = None,
            src_key_name: str | None = None, aead: str | None = None,
            progress: ProgressCallback | None = None,
            store: KeyStore | None = None) -> dict[str, Any]:
    """Copy the virtual disk ``src`` into a new image ``dst`` of format ``fmt`` (raw, qcow2
    or encrypted), like ``qemu-img convert -p``. All-zero chunks are skipped (the new image
    reads them as zeros). ``key_name`` wraps an encrypted destination (default: "default");
    an encrypted source opens with ``src_key_name`` or the stored key that matches it.
    ``progress(done_bytes, total_bytes)`` is called after every chunk."""
    src, dst = os.fspath(src), os.fspath(dst)
    store = store or KeyStore()
    src_format = src_format or detect_format(src)
    for role, f in (("format", fmt), ("src_format", src_format)):
        if f not in ("raw", "qcow2", "encrypted"):
            raise QVError("QV_ERR_INVAL", f"format {f!r} (raw, qcow2 or encrypted)", path=role)
    if os.path.lexists(dst):
        raise QVError("QV_ERR_EXIST", f"{dst} already exists", path="dst")
    reader: Any
    if src_format == "encrypted":
        reader = EncryptedDisk.open(src, src_key_name, readonly=True, store=store)
    elif src_format == "qcow2":
        reader = storage.open_disk(src, "qcow2", readonly=True)
    else:
        reader = _RawFile(src)
    total = reader.size
    writer: Any = None
    ok = False
    buf = bytearray(CONVERT_CHUNK)
    view = memoryview(buf)
    try:
        if fmt == "encrypted":
            dst_size = (total + 511) // 512 * 512
            create(dst, dst_size, None, aead, key_name or "default", store=store)
            writer = EncryptedDisk.open(dst, key_name or "default", store=store)
        elif fmt == "qcow2":
            storage.create(dst, "qcow2", total)
            writer = storage.open_disk(dst, "qcow2")
        else:
            writer = _RawFile(dst, total)
        done = 0
        if progress:
            progress(0, total)
        while done < total:
            n = min(CONVERT_CHUNK, total - done)
            reader.readinto(done, view[:n])
            if buf[:n].count(0) != n:
                writer.write(done, view[:n])
            done += n
            if progress:
                progress(done, total)
        writer.flush()
        ok = True
    finally:
        wipe(buf)  # plaintext of the disk
        reader.close()
        if writer is not None:
            writer.close()
        if not ok and os.path.exists(dst):
            os.unlink(dst)
    return {"src": src, "src_format": src_format, "dst": dst, "format": fmt,
            "bytes": total, "path": str(Path(dst))}


def effective_encryption(entry: dict[str, Any],
                         pqc: dict[str, Any] | None = None) -> dict[str, str] | None:
    """The {"kem", "aead"} a VM's storage[] entry must be encrypted with, or None.

    An entry is encrypted when its format is "encrypted", when it has an ``encrypted`` object,
    or when ``pqc.storage_encryption.enabled`` is set (then every disk is, by default). The
    entry's own ``encrypted`` values win over the pqc defaults, which win over the schema's
    defaults (ML-KEM-768, AES-256-GCM)."""
    own = entry.get("encrypted") or {}
    defaults = (pqc or {}).get("storage_encryption") or {}
    if entry.get("format") != "encrypted" and "encrypted" not in entry \
            and not defaults.get("enabled"):
        return None
    return {"kem": own.get("kem") or defaults.get("kem") or "ML-KEM-768",
            "aead": own.get("aead") or defaults.get("aead") or "AES-256-GCM"}


def open_vm_disk(entry: dict[str, Any], index: int, pqc: dict[str, Any] | None = None, *,
                 store: KeyStore | None = None) -> EncryptedDisk | None:
    """Open storage[index] of a VM configuration if it is (or must be) an encrypted image;
    None for a plain disk. Errors name the disk: QVError path ``storage[i]``, message with
    the image path. The host key is the stored key whose fingerprint the image records."""
    where = f"storage[{index}]"
    path = entry["path"]
    wanted = effective_encryption(entry, pqc)
    fmt = detect_format(path)
    given = entry.get("format")
    if fmt == "encrypted" and given not in (None, "encrypted"):
        # Handing the sealed sectors to a guest as a plain disk would let it overwrite the
        # header and records (the block layer refuses a qcow2 image given as raw likewise).
        raise QVError("QV_STR_ERR_FORMAT", f"format {given} was given but {path} is an "
                      "encrypted image (use format \"encrypted\" or leave format out)",
                      path=f"{where}.format")
    if wanted is None and fmt != "encrypted":
        return None
    if fmt != "encrypted":
        raise QVError("QV_STR_ERR_FORMAT", f"{path} is a {fmt} image, but this disk must be "
                      "encrypted (storage[].encrypted / pqc.storage_encryption); convert it "
                      f"with `quantavirt storage convert {path} NEW --format encrypted`",
                      path=where)
    fields = read_header_fields(path)
    own = entry.get("encrypted") or {}
    for name in ("kem", "aead"):
        if own.get(name) and own[name] != fields[name]:
            raise QVError("PQC_ERR_ALGORITHM", f"{path} uses {fields[name]}, the configuration "
                          f"asks for {own[name]}", path=f"{where}.encrypted.{name}")
    try:
        return EncryptedDisk.open(path, readonly=bool(entry.get("readonly")) or
                                  entry.get("media") == "cdrom",
                                  cache=entry.get("cache", "writeback"), store=store)
    except QVError as err:
        raise QVError(err.code, f"disk {path}: {err.message}", path=where) from None
