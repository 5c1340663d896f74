"""The PCI devices of a VM, chosen from its effective configuration.

- ``storage[i]`` -> a virtio-blk function (type "virtio-blk", the default): raw and qcow2
  images through the C block layer (``format`` auto-detected when absent, ``cache``,
  ``readonly``, ``discard``), media "cdrom" read-only, encrypted images through
  :func:`quantavirt.encrypted_storage.open_vm_disk` with the host key, ``queues`` ->
  multi-queue, ``io_limit`` / ``iops_limit`` -> the device's token buckets, ``boot_index``
  recorded (no firmware reads it yet: direct kernel boot only). Types nvme, ahci and ide are
  QV_ERR_NOTSUP. ``io``: "threads" (default) runs requests on a pool of worker threads,
  "native" through io_uring on the image file (cache none / directsync, checked by the
  configuration rules); several requests are in flight either way.
- ``console.type`` "virtio-console" (the default) -> a virtio-console (the guest's hvc0,
  output to the console stream and ``console.log``); "serial" -> only the 8250 on COM1, which
  exists in every VM (early kernel messages go there either way).
- virtio-rng always (entropy from getrandom(2)).
- virtio-balloon when ``memory.balloon`` is set.

Errors name the entry (``storage[i]``); a corrupt image or a format mismatch is the block
layer's QV_STR_ERR_* code with its message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from quantavirt.config.sizes import parse_size
from quantavirt.engine import Machine
from quantavirt.errors import QVError

UNSUPPORTED_STORAGE = ("nvme", "ahci", "ide")
CACHE_MODES = ("writeback", "none", "writethrough", "directsync")


@dataclass
class AttachedDisk:
    index: int                  # storage[index]
    device: int                 # the engine's virtio device index
    path: str
    format: str
    readonly: bool
    boot_index: int | None
    handle: Any                 # storage.Disk or EncryptedDisk (closed after the machine)


@dataclass
class AttachedDevices:
    disks: list[AttachedDisk] = field(default_factory=list)
    console: str = "serial"
    rng: bool = False
    balloon: bool = False

    def close(self) -> None:
        """Close the disk images (only after the machine is destroyed)."""
        for d in self.disks:
            try:
                d.handle.close()
            except QVError:
                pass
        self.disks.clear()


def _disk_handle(obj: Any) -> Any:
    """The `struct qv_disk *` of a storage.Disk or an EncryptedDisk."""
    if hasattr(obj, "_disk"):
        return obj._disk
    return obj.handle


def _open_disk(entry: Mapping[str, Any], i: int, pqc: Mapping[str, Any] | None) -> Any:
    from quantavirt import encrypted_storage, storage

    where = f"storage[{i}]"
    readonly = bool(entry.get("readonly")) or entry.get("media") == "cdrom"
    enc = encrypted_storage.open_vm_disk(dict(entry), i, dict(pqc) if pqc else None)
    if enc is not None:
        return enc
    fmt = entry.get("format")
    if fmt not in (None, "raw", "qcow2"):
        raise QVError("QV_STR_ERR_FORMAT", f"unknown disk format {fmt!r}", path=f"{where}.format")
    cache = entry.get("cache", "writeback")
    if cache not in CACHE_MODES:
        raise QVError("QV_ERR_INVAL", f"unknown cache mode {cache!r}", path=f"{where}.cache")
    try:
        return storage.open_disk(entry["path"], fmt, cache=cache, readonly=readonly,
                                 discard=bool(entry.get("discard")))
    except QVError as err:
        path = str(entry["path"])
        msg = err.message if path in err.message else f"disk {path}: {err.message}"
        raise QVError(err.code, msg, path=where) from None


def _limit(entry: Mapping[str, Any], name: str, where: str) -> int:
    value = entry.get(name)
    if value in (None, 0, "unlimited"):
        return 0
    try:
        n = parse_size(value) if isinstance(value, str) else int(value)
    except (TypeError, ValueError) as e:
        raise QVError("QV_ERR_INVAL", str(e), path=f"{where}.{name}") from None
    if n < 0:
        raise QVError("QV_ERR_INVAL", f"{name} cannot be negative", path=f"{where}.{name}")
    return n


def attach_devices(machine: Machine, config: Mapping[str, Any], out: AttachedDevices) -> None:
    """Open every disk and add the PCI functions to `machine` (before it starts), recording
    them in `out`. On error the QVError names the entry; the caller closes `out` after the
    machine (the devices use the disks until the machine is destroyed)."""
    storage: Sequence[Mapping[str, Any]] = config.get("storage") or []
    pqc = config.get("pqc")
    for i, entry in enumerate(storage):
        where = f"storage[{i}]"
        kind = entry.get("type", "virtio-blk")
        if kind in UNSUPPORTED_STORAGE:
            raise QVError("QV_ERR_NOTSUP", f"storage type {kind!r} is not supported yet; "
                          "use virtio-blk", path=f"{where}.type")
        if kind != "virtio-blk":
            raise QVError("QV_ERR_INVAL", f"unknown storage type {kind!r}",
                          path=f"{where}.type")
        queues = entry.get("queues", 1)
        if not isinstance(queues, int) or not 1 <= queues <= 63:
            raise QVError("QV_ERR_INVAL", "queues must be 1..63 on this VMM",
                          path=f"{where}.queues")
        io = entry.get("io", "threads")
        if io not in ("threads", "native"):
            raise QVError("QV_ERR_INVAL", f"unknown io mode {io!r}", path=f"{where}.io")
        io_limit = _limit(entry, "io_limit", where)
        iops_limit = _limit(entry, "iops_limit", where)
        try:
            handle = _open_disk(entry, i, pqc)
        except QVError as err:
            if err.path and err.path.startswith(where):
                raise
            raise QVError(err.code, err.message, path=where) from None
        readonly = bool(entry.get("readonly")) or entry.get("media") == "cdrom"
        disk = AttachedDisk(i, -1, str(entry["path"]), str(entry.get("format") or "auto"),
                            readonly, entry.get("boot_index"), handle)
        out.disks.append(disk)
        try:
            disk.device = machine.add_virtio_blk(
                _disk_handle(handle), readonly=readonly, discard=bool(entry.get("discard")),
                queues=queues, serial=f"qv-disk{i}", io_limit=io_limit,
                iops_limit=iops_limit, io=io)
        except QVError as err:
            raise QVError(err.code, err.message, path=where) from None
    console = config.get("console") or {}
    out.console = console.get("type", "virtio-console")
    if out.console not in ("virtio-console", "serial"):
        raise QVError("QV_ERR_INVAL", f"unknown console type {out.console!r}",
                      path="console.type")
    if out.console == "virtio-console":
        machine.add_virtio_console()
    machine.add_virtio_rng()
    out.rng = True
    if (config.get("memory") or {}).get("balloon"):
        machine.add_virtio_balloon()
        out.balloon = True


def disk_stats(machine: Machine, devices: AttachedDevices) -> list[dict[str, object]]:
    """Per-disk counters: storage index, path, bytes and operations."""
    result: list[dict[str, object]] = []
    for d in devices.disks:
        st = machine.blk_stats(d.device)
        result.append({"storage": d.index, "path": d.path, "readonly": d.readonly,
                       "boot_index": d.boot_index, **st})
    return result
