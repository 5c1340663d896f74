"""Generate the source of quantavirt._native (cffi API mode, out of line).

Run by the CMake build: ``build_ffi.py SOURCE_DIR OUTPUT_C``. The declarations cffi sees are
the ``csrc/cffi/*.cdef`` files, one per subsystem; the C compiler sees every public header in
``csrc/include/quantavirt/``. Adding a subsystem means adding one header and one .cdef file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cffi


def make_ffi(source_dir: Path) -> cffi.FFI:
    ffi = cffi.FFI()
    for cdef in sorted((source_dir / "csrc" / "cffi").glob("*.cdef")):
        ffi.cdef(cdef.read_text(), override=False)
    headers = sorted((source_dir / "csrc" / "include" / "quantavirt").glob("*.h"))
    includes = "\n".join(f'#include "quantavirt/{h.name}"' for h in headers)
    ffi.set_source("quantavirt._native", includes)
    return ffi


def main() -> None:
    source_dir, output = Path(sys.argv[1]), Path(sys.argv[2])
    make_ffi(source_dir).emit_c_code(str(output))


if __name__ == "__main__":
    main()
