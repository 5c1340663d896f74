"""Guest-side artefacts the VMM and its tests boot: initramfs images with a small init.

The initramfs is a newc cpio archive written here (no external tools), holding a static
busybox and an /init script. Uncompressed by default: the kernel unpacks it faster, which
matters on an emulating KVM backend.

The init understands these kernel command-line words (unknown words are ignored by Linux
and passed on to init):
  qv.action=poweroff|reboot|panic|wait   what to do once init has run (default poweroff)
  qv.boot_timer=0xADDR                   a 1-byte MMIO write there tells the VMM init started
  qv.run=CMD                             one shell command to run first (spaces as '+')
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BUSYBOX = "/bin/busybox"
INIT_BANNER = "quantavirt-init: started"

DEFAULT_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
action=poweroff
for word in $(cat /proc/cmdline); do
  case "$word" in
    qv.action=*) action=${word#qv.action=} ;;
    qv.boot_timer=*) devmem "${word#qv.boot_timer=}" 8 1 ;;
    qv.run=*) cmd=${word#qv.run=} ;;
  esac
done
echo "quantavirt-init: started"
if [ -n "$cmd" ]; then
  eval "$(echo "$cmd" | tr '+' ' ')"
fi
echo "quantavirt-init: action $action"
sync
case "$action" in
  reboot) reboot -f ;;
  panic) exit 1 ;;
  wait) while :; do sleep 3600; done ;;
  *) poweroff -f ;;
esac
"""


@dataclass
class CpioEntry:
    name: str
    mode: int
    data: bytes = b""
    target: str = ""  # symlink target


@dataclass
class CpioArchive:
    """A newc ("070701") cpio archive built in memory."""

    entries: list[CpioEntry] = field(default_factory=list)

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self.entries.append(CpioEntry(name, stat.S_IFDIR | mode))

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.entries.append(CpioEntry(name, stat.S_IFREG | mode, data))

    def add_symlink(self, name: str, target: str) -> None:
        self.entries.append(CpioEntry(name, stat.S_IFLNK | 0o777, target=target))

    def add_char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        entry = CpioEntry(name, stat.S_IFCHR | mode)
        entry.target = f"{major}:{minor}"
        self.entries.append(entry)

    def to_bytes(self) -> bytes:
        out = bytearray()
        for ino, entry in enumerate([*self.entries, CpioEntry("TRAILER!!!", 0)], start=1):
            body = entry.data
            rdev_major = rdev_minor = 0
            if stat.S_ISLNK(entry.mode):
                body = entry.target.encode()
            elif stat.S_ISCHR(entry.mode):
                rdev_major, rdev_minor = (int(x) for x in entry.target.split(":"))
            name = entry.name.encode() + b"\0"
            fields = [ino if entry.mode else 0, entry.mode, 0, 0,
                      2 if stat.S_ISDIR(entry.mode) else 1, 0, len(body), 0, 0,
                      rdev_major, rdev_minor, len(name), 0]
            out += b"070701" + b"".join(b"%08X" % f for f in fields)
            out += name
            out += b"\0" * (-len(out) % 4)
            out += body
            out += b"\0" * (-len(out) % 4)
        return bytes(out)


def build_initramfs(path: str | os.PathLike[str], *, busybox: str = DEFAULT_BUSYBOX,
                    init_script: str = DEFAULT_INIT,
                    extra_files: dict[str, bytes] | None = None) -> Path:
    """Write an initramfs with a static busybox and /init to `path`; returns the path."""
    busybox_bytes = Path(busybox).read_bytes()
    archive = CpioArchive()
    for d in ("bin", "dev", "proc", "sys", "tmp", "sbin", "etc"):
        archive.add_dir(d)
    archive.add_char_device("dev/console", 5, 1)
    archive.add_file("bin/busybox", busybox_bytes, 0o755)
    archive.add_symlink("bin/sh", "busybox")
    archive.add_file("init", init_script.encode(), 0o755)
    for name, data in (extra_files or {}).items():
        archive.add_file(name.lstrip("/"), data, 0o755)
    out = Path(path)
    out.write_bytes(archive.to_bytes())
    return out
