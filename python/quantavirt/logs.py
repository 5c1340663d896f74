"""Log lines in the documented format: ``[ERROR] quantavirt::<subsystem>: <message>``."""

from __future__ import annotations

import sys
import time
from typing import TextIO

LEVELS = ("ERROR", "WARN", "INFO", "DEBUG")
_threshold = "WARN"  # the daemon and the runners log INFO too (set_level)


def set_level(level: str) -> None:
    global _threshold
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    _threshold = level


def format_line(level: str, subsystem: str, message: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    return f"[{level}] quantavirt::{subsystem}: {message}"


def log(level: str, subsystem: str, message: str, stream: TextIO | None = None,
        timestamp: bool = False) -> None:
    """Write one line (to stderr unless told otherwise); `timestamp` prefixes UTC time."""
    line = format_line(level, subsystem, message)
    if LEVELS.index(level) > LEVELS.index(_threshold):
        return
    if timestamp:
        line = time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + line
    print(line, file=stream or sys.stderr, flush=True)
