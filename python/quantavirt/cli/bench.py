"""``quantavirt bench pqc [--json] [--quick]``: PQC throughput of every backend on this host."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from quantavirt.bench import pqc as pqc_bench


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("bench", help="measure this host's performance")
    sub = p.add_subparsers(dest="bench_command", metavar="WHAT")
    q = sub.add_parser("pqc", help="ops/s of ML-KEM and ML-DSA on every available backend, "
                       "with OpenSSL measured in the same run")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--quick", action="store_true",
                   help="batch sizes 1 and 16 only, a few milliseconds per cell")
    q.add_argument("--algorithm", action="append", dest="algorithms", metavar="NAME",
                   help="only this algorithm (repeatable), e.g. ML-KEM-768")
    q.add_argument("--backend", action="append", dest="backends", metavar="NAME",
                   choices=("software", "quac100", "liboqs"),
                   help="only this backend (repeatable)")
    q.set_defaults(handler=run_pqc)
    p.set_defaults(handler=lambda args: (p.print_help(sys.stderr), 2)[1])


def run_pqc(args: argparse.Namespace) -> int:
    results = pqc_bench.run(quick=args.quick,
                            algorithms=tuple(args.algorithms) if args.algorithms else None,
                            backends=args.backends)
    env = pqc_bench.environment()
    if args.json:
        print(json.dumps({"environment": env, "quick": args.quick,
                          "results": [r.to_dict() for r in results]}, indent=2))
    else:
        print(f"# {env['cpu']} ({env['cores']} cores); software code path "
              f"{env['software_code_path']}; auto backend {env['auto_backend']}")
        print(pqc_bench.format_table(results))
    return 0
