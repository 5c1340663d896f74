"""Access to the C core (quantavirt._native, built by cffi in API mode)."""

from __future__ import annotations

from quantavirt._native import ffi, lib

__all__ = ["ffi", "lib", "c_string"]


def c_string(ptr: object) -> str:
    """A Python str from a `const char *` the core returned (never NULL by contract)."""
    return ffi.string(ptr).decode()  # type: ignore[arg-type]
