"""The `quantavirt` command line (also `python -m quantavirt`).

Each module in this package that defines ``register(subparsers)`` adds one verb group
(``vm``, ``host``, ``schema``, ``launch``, ...); they are found automatically, so adding a
command never touches this file.

Exit codes: 0 success; 1 a QuantaVirt error (printed as ``Error: NAME (code): message``);
2 a usage error; 130 interrupted. ``launch`` documents its own guest-result codes.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from quantavirt import __version__
from quantavirt.errors import QVError, QVMultiError

EXIT_OK = 0
EXIT_QV_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantavirt",
        description="QuantaVirt: a post-quantum secured virtual machine monitor for KVM.",
    )
    parser.add_argument("--version", action="version", version=f"quantavirt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def print_error(err: QVError) -> None:
    items = err.items if isinstance(err, QVMultiError) else [err]
    for item in items:
        where = f"{item.path}: " if item.path else ""
        print(f"Error: {item.name} ({item.code}): {where}{item.message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args) or EXIT_OK)
    except QVError as err:
        print_error(err)
        return EXIT_QV_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
