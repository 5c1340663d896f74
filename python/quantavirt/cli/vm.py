"""``quantavirt vm ...``: the VM verb group. Each action is one ``_add_<action>`` function
registering its subparser; lifecycle actions (create, start, ...) join the same group."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from quantavirt.cli._vm_lifecycle import add_lifecycle
from quantavirt.config.effective import build_effective
from quantavirt.config.loader import read_config
from quantavirt.config.validate import find_problems, to_error
from quantavirt.errors import QVError, QVMultiError

EXIT_OK = 0
EXIT_INVALID = 1


def _error_dicts(err: QVError) -> list[dict[str, Any]]:
    items = err.items if isinstance(err, QVMultiError) else [err]
    return [{"code": i.code, "name": i.name, "path": i.path or "", "message": i.message}
            for i in items]


def _validate(args: argparse.Namespace) -> int:
    effective: dict[str, Any] | None = None
    try:
        checked, problems = find_problems(read_config(args.config),
                                          check_host=not args.no_host_checks)
        if problems:
            raise to_error(problems)
        effective = build_effective(checked)
    except QVError as err:
        if not args.json:
            raise
        print(json.dumps({"valid": False, "errors": _error_dicts(err), "effective": None},
                         indent=2))
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"valid": True, "errors": [], "effective": effective}, indent=2))
    elif args.print_effective:
        print(json.dumps(effective, indent=2))
    else:
        print(f"{args.config}: VM '{effective['name']}' is valid")
    return EXIT_OK


def _add_validate(actions: Any) -> None:
    p = actions.add_parser(
        "validate", help="check a VM config file without creating the VM",
        description="Validate a VM config (schema 1.0) and report every problem with its "
                    "error code and JSON path. Exit 0 when valid, 1 when not.")
    p.add_argument("--config", required=True, metavar="FILE", help="the VM config (JSON)")
    p.add_argument("--json", action="store_true",
                   help='print {"valid", "errors", "effective"} as JSON on stdout')
    p.add_argument("--print-effective", action="store_true",
                   help="print the effective config (every default filled in) on stdout")
    p.add_argument("--no-host-checks", action="store_true",
                   help="skip the rules that depend on this host (paths, networks, SEV, "
                        "name in use)")
    p.set_defaults(handler=_validate)


def register(subparsers: Any) -> None:
    vm = subparsers.add_parser("vm", help="define and manage virtual machines",
                               description="Define and manage virtual machines.")
    actions = vm.add_subparsers(dest="vm_action", metavar="ACTION")

    def _usage(_args: argparse.Namespace) -> int:
        vm.print_help(sys.stderr)
        return 2

    vm.set_defaults(handler=_usage)
    _add_validate(actions)
    add_lifecycle(actions)
