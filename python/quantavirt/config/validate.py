"""Validation of a parsed VM config: structure, cross-field rules, host rules; every problem
is reported, each with its code, JSON path, the offending value and the rule it breaks."""

from __future__ import annotations

from typing import Any

from quantavirt.config.cross_rules import check_cross_field
from quantavirt.config.effective import build_effective
from quantavirt.config.fields import Problem, Problems
from quantavirt.config.host_rules import check_host_rules
from quantavirt.config.model import VM
from quantavirt.errors import ErrorItem, QVMultiError, code_of
from quantavirt.host import HostInfo, probe


def find_problems(doc: Any, *, check_host: bool = True, host: HostInfo | None = None,
                  allow_existing: bool = False) -> tuple[Any, list[Problem]]:
    """The checked config and every problem with it (empty when valid)."""
    out = Problems()
    try:
        checked = VM.check(doc, (), out)
        check_cross_field(checked, out)
        if check_host:
            check_host_rules(checked, host if host is not None else probe(),
                             allow_existing=allow_existing, out=out)
    except RecursionError:
        out.inval((), "config is nested too deeply", "depth")
        checked = None
    return checked, out.items


def to_error(problems: list[Problem]) -> QVMultiError:
    return QVMultiError([ErrorItem(code_of(p.code), p.path, p.message) for p in problems])


def validate(doc: Any, *, check_host: bool = True, host: HostInfo | None = None,
             allow_existing: bool = False) -> dict[str, Any]:
    """The effective config of ``doc`` (a parsed JSON value, possibly anything).

    Raises QVMultiError listing every problem. ``check_host=False`` skips the rules that
    depend on this host and $QUANTAVIRT_HOME; ``host`` replaces the real probe;
    ``allow_existing`` accepts a name whose VM directory already exists (re-validation of a
    created VM).
    """
    checked, problems = find_problems(doc, check_host=check_host, host=host,
                                      allow_existing=allow_existing)
    if problems:
        raise to_error(problems)
    return build_effective(checked)
