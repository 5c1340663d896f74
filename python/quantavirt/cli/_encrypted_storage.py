"""CLI handlers of the encrypted disk format, for the `storage` verb group.

The `storage` group (cli/storage.py) calls :func:`add_storage_subcommands` with its
subparsers action, which adds ``rekey`` and ``convert``; for ``create`` it calls
:func:`add_create_options` on its own create parser and, when ``--format encrypted`` is
given, hands the parsed arguments to :func:`create_encrypted`; ``storage info`` may call
:func:`info_encrypted` for an image whose format is "encrypted". The leading underscore keeps
this module from being registered as a group of its own.

    quantavirt storage create --name db --format encrypted --size 20G \\
        --kem ML-KEM-1024 --aead AES-256-GCM [--key NAME] [--preallocate]
    quantavirt storage rekey IMAGE --old-key NAME --new-key NAME
    quantavirt storage convert SRC DST --format raw|qcow2|encrypted [--key NAME]
        [--src-key NAME] [--aead ...] [-p]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from quantavirt import encrypted_storage as es
from quantavirt.cli import _progress
from quantavirt.config.sizes import format_size
from quantavirt.errors import QVError
from quantavirt.keys import quantavirt_home

DEFAULT_SUFFIX = ".qvenc"


def images_dir() -> Path:
    return quantavirt_home() / "images"


def image_path(name_or_path: str, suffix: str = DEFAULT_SUFFIX) -> str:
    """A path as given, or a bare name inside $QUANTAVIRT_HOME/images/."""
    if os.sep in name_or_path or os.path.exists(name_or_path):
        return name_or_path
    p = images_dir() / name_or_path
    if not p.exists() and not p.suffix:
        p = p.with_suffix(suffix)
    return str(p)


def add_create_options(create_parser: argparse.ArgumentParser) -> None:
    """The options `storage create --format encrypted` understands."""
    g = create_parser.add_argument_group("encrypted format")
    g.add_argument("--kem", choices=list(es.KEMS), default=None,
                   help="ML-KEM parameter set (must be the host key's; default: the key's)")
    g.add_argument("--aead", choices=list(es.AEADS), default=None,
                   help="sector AEAD (default: AES-256-GCM with AES-NI, else ChaCha20-Poly1305)")
    g.add_argument("--key", default="default", help="host key to wrap the data key to")
    g.add_argument("--preallocate", action="store_true",
                   help="encrypted: seal every sector now (detects erased sector records "
                        "later); raw: write every byte now (full allocation); with a "
                        "progress bar")


def create_encrypted(args: argparse.Namespace) -> int:
    """Handler of `storage create --format encrypted` (args: name or path, size, kem, aead,
    key, preallocate)."""
    target = getattr(args, "path", None) or getattr(args, "name", None)
    if not target:
        raise QVError("QV_ERR_INVAL", "give --name or --path", path="name")
    path = target if getattr(args, "path", None) else str(images_dir() / (
        target if Path(target).suffix else target + DEFAULT_SUFFIX))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    bar = _progress.callback(getattr(args, "progress", None)) if args.preallocate else None
    with _progress.FileAllocationWatch(path, bar) if bar else contextlib.nullcontext():
        result = es.create(path, args.size, args.kem, args.aead, args.key,
                           preallocate=args.preallocate)
    print(f"Created encrypted image {path}: {format_size(result['virtual_size'])}, "
          f"{result['kem']} / {result['aead']}, wrapped to host key {args.key}")
    return 0


def _print_info(result: dict[str, Any]) -> None:
    rows = [
        ("path", result["path"]),
        ("format", f"encrypted (version {result['format_version']})"),
        ("virtual size", f"{result['virtual_size_text']} ({result['virtual_size']} bytes)"),
        ("actual size", str(result["actual_size"])),
        ("uuid", result["uuid"]),
        ("key wrapping", result["kem"]),
        ("sector AEAD", result["aead"]),
        ("key derivation", result["kdf"]),
        ("sector size", str(result["sector_size"])),
        ("preallocated", "yes" if result["preallocated"] else "no"),
        ("host key", f"{result['host_key'] or '(not on this host)'} "
                     f"[{result['key_fingerprint']}]"),
    ]
    if "verified" in result:
        rows.append(("header", "authenticated with the host key"))
    for k, v in rows:
        print(f"{k + ':':<16}{v}")


def info_encrypted(path: str, as_json: bool = False, verify: bool = False) -> int:
    result = es.info(path, verify=verify)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        _print_info(result)
    return 0


def _info(args: argparse.Namespace) -> int:
    return info_encrypted(image_path(args.image), args.json, args.verify)


def _rekey(args: argparse.Namespace) -> int:
    path = image_path(args.image)
    result = es.rekey(path, args.old_key, args.new_key)
    print(f"Rekeyed {path}: data key now wrapped to host key {args.new_key} "
          f"({result['kem']}); {args.old_key} no longer opens it")
    return 0


def _convert(args: argparse.Namespace) -> int:
    es.convert(args.src, args.dst, args.format, src_format=args.src_format,
               key_name=args.key, src_key_name=args.src_key, aead=args.aead,
               progress=_progress.callback(args.progress))
    print(f"Converted {args.src} -> {args.dst} ({args.format})")
    return 0


def add_storage_subcommands(storage_subparsers: argparse._SubParsersAction,
                            include_info: bool = False) -> None:
    """Add `rekey` and `convert` (and, with include_info, an encrypted-only `info`)."""
    r = storage_subparsers.add_parser("rekey", help="wrap an encrypted image's data key to "
                                      "another host key (data not rewritten)")
    r.add_argument("image", help="image path or name in $QUANTAVIRT_HOME/images")
    r.add_argument("--old-key", required=True, help="host key that opens the image now")
    r.add_argument("--new-key", required=True, help="host key to wrap to")
    r.set_defaults(handler=_rekey)

    c = storage_subparsers.add_parser("convert", help="copy a disk into a new image of "
                                      "another format (like qemu-img convert)")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--format", "-O", required=True, choices=["raw", "qcow2", "encrypted"],
                   help="format of DST")
    c.add_argument("--src-format", "-f", choices=["raw", "qcow2", "encrypted"],
                   help="format of SRC (default: detected)")
    c.add_argument("--key", help="host key for an encrypted DST (default: default)")
    c.add_argument("--src-key", help="host key of an encrypted SRC (default: the stored key "
                   "matching it)")
    c.add_argument("--aead", choices=list(es.AEADS), default=None,
                   help="sector AEAD of an encrypted DST (default as for create)")
    _progress.add_progress_option(c, short=True)
    c.set_defaults(handler=_convert)

    if include_info:
        i = storage_subparsers.add_parser("info", help="show an encrypted image (never a key)")
        i.add_argument("image")
        i.add_argument("--json", action="store_true")
        i.add_argument("--verify", action="store_true",
                       help="authenticate the header with the matching host key")
        i.set_defaults(handler=_info)
