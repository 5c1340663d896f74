"""`quantavirt keys`: host ML-KEM key pairs for encrypted disks.

    quantavirt keys create [--name N] [--kem ML-KEM-768] [--backend software|quac100]
                           [--device /dev/quac100_N]
    quantavirt keys list [--json]
    quantavirt keys export-public NAME [--output FILE]

The secret key is never printed; export-public writes a SubjectPublicKeyInfo PEM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from quantavirt.errors import QVError
from quantavirt.keys import DEFAULT_KEM, KeyStore
from quantavirt.pqc.kem import ALGORITHMS


def _create(args: argparse.Namespace) -> int:
    key = KeyStore().create(args.name, args.kem, args.backend, device=args.device)
    where = f", key slot {key.slot} of {key.device}" if key.slot is not None else ""
    print(f"Created host key {key.name} ({key.kem}, {key.backend}{where}), fingerprint "
          f"SHA3-256:{key.fingerprint}")
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = KeyStore().list()
    if args.json:
        print(json.dumps([k.to_dict() for k in keys], indent=2))
        return 0
    if not keys:
        print("No host keys.")
        return 0
    print(f"{'NAME':<20} {'KEM':<12} {'BACKEND':<9} {'SLOT':<5} {'CREATED':<21} "
          "FINGERPRINT (SHA3-256)")
    for k in keys:
        slot = "-" if k.slot is None else str(k.slot)
        print(f"{k.name:<20} {k.kem:<12} {k.backend:<9} {slot:<5} {k.created:<21} "
              f"{k.fingerprint}")
    return 0


def _export_public(args: argparse.Namespace) -> int:
    pem = KeyStore().export_public(args.name)
    if args.output in (None, "-"):
        sys.stdout.write(pem)
        return 0
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise QVError("QV_ERR_IO", f"cannot write {args.output}: {exc.strerror}",
                      path="output") from None
    with os.fdopen(fd, "w") as f:
        f.write(pem)
    print(f"Wrote the public key of {args.name} to {args.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keys", help="host ML-KEM key pairs for encrypted disks")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    p.set_defaults(handler=lambda _args: (p.print_help(sys.stderr), 2)[1])

    c = sub.add_parser("create", help="generate a host key pair")
    c.add_argument("--name", default="default", help="key name (default: default)")
    c.add_argument("--kem", default=DEFAULT_KEM, choices=list(ALGORITHMS),
                   help=f"ML-KEM parameter set (default {DEFAULT_KEM})")
    c.add_argument("--backend", default="software", choices=["software", "quac100"],
                   help="where the secret key lives: the state directory (software) or a "
                   "QUAC 100 key slot (quac100)")
    c.add_argument("--device", help="QUAC 100 device node for --backend quac100 (default: "
                   "$QUANTAVIRT_QUAC100_DEVICE, else /dev/quac100_0..15)")
    c.set_defaults(handler=_create)

    ls = sub.add_parser("list", help="list host keys (never the secret)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=_list)

    e = sub.add_parser("export-public", help="write a public key as PEM")
    e.add_argument("name")
    e.add_argument("--output", "-o", help="file to write (default: standard output)")
    e.set_defaults(handler=_export_public)
