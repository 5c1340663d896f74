"""Size strings of the VM configuration: "512M", "8G", "1T" (powers of 1024) or plain bytes."""

from __future__ import annotations

import re

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_RE = re.compile(r"^([0-9]+)([KMGT]?)$")


def parse_size(text: str) -> int:
    """Bytes of a size string; ValueError with the reason for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"size must be a string like '512M', not {type(text).__name__}")
    match = _SIZE_RE.match(text.strip().upper())
    if match is None:
        raise ValueError(f"'{text}' is not a size (digits with an optional K, M, G or T)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_size(nbytes: int) -> str:
    """The shortest exact size string for a byte count (1073741824 -> "1G")."""
    for unit in ("T", "G", "M", "K"):
        if nbytes and nbytes % _UNITS[unit] == 0:
            return f"{nbytes // _UNITS[unit]}{unit}"
    return str(nbytes)
