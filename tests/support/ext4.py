"""Host-side facts about ext4 images the Linux-guest tests check (e2fsprogs)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def superblock(path: Path) -> dict[str, str]:
    """`dumpe2fs -h` of an ext4 image, field name -> value (mount count, last mount time...)."""
    out = subprocess.run(["dumpe2fs", "-h", str(path)], capture_output=True, text=True,
                         check=True).stdout
    fields = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    return fields
