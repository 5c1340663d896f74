"""``quantavirt serve``: run the management API daemon (see quantavirt.api.server)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from quantavirt.api.server import DEFAULT_LISTEN, DEFAULT_SOCKET, serve


def _serve(args: argparse.Namespace) -> int:
    asyncio.run(serve(args.socket, args.listen or None))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="run the management API daemon",
        description="Serve the REST API (/api/v1) on a Unix socket and on TCP, with a bearer "
                    "token kept in $QUANTAVIRT_HOME/api-token (made at the first start). "
                    "VMs run in their own processes and keep running when the daemon stops.")
    p.add_argument("--socket", default=DEFAULT_SOCKET, metavar="PATH",
                   help=f"Unix socket (default {DEFAULT_SOCKET})")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"TCP address (default {DEFAULT_LISTEN}; '' for none)")
    p.set_defaults(handler=_serve)
