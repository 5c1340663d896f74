"""`quantavirt storage-enc`: a stand-in group for the encrypted-format storage commands until
the `storage` group (cli/storage.py) wires in cli/_encrypted_storage.py. Remove at merge.

    quantavirt storage-enc create (--name N | --path P) --size 20G [--kem ..] [--aead ..]
    quantavirt storage-enc rekey | convert | info
"""

from __future__ import annotations

import argparse
import sys

from quantavirt.cli import _encrypted_storage as enc


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("storage-enc", help="encrypted disk images (temporary group)")
    sub = p.add_subparsers(dest="storage_enc_command", metavar="ACTION")
    p.set_defaults(handler=lambda _args: (p.print_help(sys.stderr), 2)[1])
    c = sub.add_parser("create", help="create an encrypted image")
    where = c.add_mutually_exclusive_group(required=True)
    where.add_argument("--name", help="image name in $QUANTAVIRT_HOME/images")
    where.add_argument("--path", help="image path")
    c.add_argument("--format", default="encrypted", choices=["encrypted"])
    c.add_argument("--size", required=True, help="virtual size, e.g. 20G")
    enc.add_create_options(c)
    c.set_defaults(handler=enc.create_encrypted)
    enc.add_storage_subcommands(sub, include_info=True)
