"""`quantavirt storage create|info|rekey|convert`: disk images (raw, qcow2, encrypted)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from quantavirt import encrypted_storage, storage
from quantavirt.cli import _encrypted_storage as enc
from quantavirt.cli import _progress
from quantavirt.config.sizes import format_size, parse_size
from quantavirt.errors import QVError


def images_dir() -> Path:
    return Path(os.environ.get("QUANTAVIRT_HOME", "/var/lib/quantavirt")) / "images"


def _image_path(name: str, directory: str | None) -> Path:
    """An absolute --name is the path itself; otherwise the image lives in the images dir."""
    p = Path(name)
    if p.is_absolute():
        return p
    return (Path(directory) if directory else images_dir()) / p


def _create(args: argparse.Namespace) -> int:
    if args.format == "encrypted":
        if args.backing is not None:
            raise QVError("QV_ERR_INVAL", "an encrypted image has no backing file",
                          path="--backing")
        if args.size is None:
            raise QVError("QV_ERR_INVAL", "--size is required", path="--size")
        if Path(args.name).is_absolute() or args.dir:
            args.path = str(_image_path(args.name, args.dir))
        return enc.create_encrypted(args)
    for option in ("kem", "aead"):
        if getattr(args, option) is not None:
            raise QVError("QV_ERR_INVAL", f"--{option} applies to --format encrypted only",
                          path=f"--{option}")
    size = None
    if args.size is not None:
        try:
            size = parse_size(args.size)
        except ValueError as err:
            raise QVError("QV_ERR_INVAL", str(err), path="--size") from None
    elif args.backing is None:
        raise QVError("QV_ERR_INVAL", "--size is required without --backing", path="--size")
    path = _image_path(args.name, args.dir)
    if args.dir is None and not Path(args.name).is_absolute():
        path.parent.mkdir(parents=True, exist_ok=True)
    storage.create(path, args.format, size, backing=args.backing,
                   preallocate=args.preallocate,
                   progress=_progress.callback(args.progress) if args.preallocate else None)
    print(f"created {path} ({args.format}, {format_size(storage.info(path)['virtual_size'])})")
    return 0


def _info(args: argparse.Namespace) -> int:
    path = Path(args.image)
    if not path.exists():
        candidate = _image_path(args.image, None)
        if candidate.exists():
            path = candidate
        elif Path(enc.image_path(args.image)).exists():  # encrypted images get .qvenc
            path = Path(enc.image_path(args.image))
    if path.exists() and encrypted_storage.detect_format(path) == "encrypted":
        return enc.info_encrypted(str(path), args.json, args.verify)
    data = storage.info(path)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [
        ("image", data["path"]),
        ("format", data["format"]),
        ("virtual size",
         f"{format_size(int(data['virtual_size']))} ({data['virtual_size']} bytes)"),
        ("actual size", f"{data['actual_size']} bytes"),
    ]
    if data["format"] == "qcow2":
        rows += [("cluster size", str(data["cluster_size"])), ("version", str(data["version"])),
                 ("snapshots", str(data["snapshots"]))]
    if data["backing_file"]:
        fmt = f" ({data['backing_format']})" if data["backing_format"] else ""
        rows.append(("backing file", f"{data['backing_file']}{fmt}"))
    rows.append(("encrypted", "yes" if data["encrypted"] else "no"))
    for key, value in rows:
        print(f"{key + ':':<14}{value}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("storage", help="create and inspect disk images")
    sub = p.add_subparsers(dest="storage_command", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="create a raw or qcow2 image")
    c.add_argument("--name", required=True, help="image name (in --dir) or absolute path")
    c.add_argument("--format", choices=[*storage.FORMATS, "encrypted"], default="qcow2")
    c.add_argument("--size", help="virtual size, e.g. 20G (default: the backing file's)")
    c.add_argument("--backing", help="backing file (qcow2 only)")
    c.add_argument("--dir", help="directory (default $QUANTAVIRT_HOME/images)")
    enc.add_create_options(c)
    _progress.add_progress_option(c)
    c.set_defaults(handler=_create)
    i = sub.add_parser("info", help="show an image's format, sizes and backing file")
    i.add_argument("image", metavar="NAME|PATH")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--verify", action="store_true",
                   help="encrypted images: authenticate the header with the matching host key")
    i.set_defaults(handler=_info)
    enc.add_storage_subcommands(sub)
