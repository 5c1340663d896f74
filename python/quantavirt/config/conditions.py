"""Cross-field rules that JSON Schema can express, written once as data.

An :class:`Implies` rule says "when this holds, that must hold". Its conditions evaluate on a
checked config (absent fields take their defaults) and also translate to JSON Schema
``if``/``then``, so the validator and the exported schema share one definition.

A condition evaluates to True, False or None ("unknown": a field it reads was itself invalid
and has already been reported), and a rule with an unknown side stays silent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quantavirt.config.fields import (
    INVALID,
    MISSING,
    Arr,
    Obj,
    Path,
    Problems,
    Rule,
    same,
)

RelPath = tuple[str, ...]


def _lookup(value: Any, node: Obj, path: RelPath) -> Any:
    """The checked value at ``path`` inside ``value``; the default when absent."""
    current = value
    for name in path:
        if current is INVALID:
            return INVALID
        if not isinstance(current, dict) or name not in current:
            return node.default_at(path)
        current = current[name]
    return current


def _nest(path: RelPath, leaf: dict[str, Any], required: bool) -> dict[str, Any]:
    """``leaf`` applied to the value at ``path``; ``required``: the value must be present."""
    schema = leaf
    for name in reversed(path):
        wrapped: dict[str, Any] = {"properties": {name: schema}}
        if required:
            wrapped["required"] = [name]
        schema = wrapped
    return schema


class Cond:
    def evaluate(self, value: Any, node: Any) -> bool | None:
        raise NotImplementedError

    def schema(self, node: Any) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Is(Cond):
    """The value at ``path`` (its default when absent) is one of ``values`` (or, with
    ``negate``, none of them). ``if_absent`` overrides what an absent value means."""

    path: RelPath
    values: tuple[Any, ...]
    negate: bool = False
    if_absent: bool | None = None

    def _absent_result(self, node: Any) -> bool:
        if self.if_absent is not None:
            return self.if_absent
        if not self.path:
            return False
        default = node.default_at(self.path)
        if default is MISSING:
            return False
        return any(same(default, v) for v in self.values) != self.negate

    def evaluate(self, value: Any, node: Any) -> bool | None:
        current = value
        for name in self.path:
            if current is INVALID:
                return None
            if not isinstance(current, dict) or name not in current:
                return self._absent_result(node)
            current = current[name]
        if current is INVALID:
            return None
        return any(same(current, v) for v in self.values) != self.negate

    def schema(self, node: Any) -> dict[str, Any]:
        leaf: dict[str, Any] = {"const": self.values[0]} if len(self.values) == 1 \
            else {"enum": list(self.values)}
        if self.negate:
            leaf = {"not": leaf}
        return _nest(self.path, leaf, required=not self._absent_result(node))


@dataclass(frozen=True)
class Present(Cond):
    path: RelPath

    def evaluate(self, value: Any, node: Any) -> bool | None:
        current = value
        for name in self.path:
            if current is INVALID:
                return None
            if not isinstance(current, dict) or name not in current:
                return False
            current = current[name]
        return None if current is INVALID else True

    def schema(self, node: Any) -> dict[str, Any]:
        return _nest(self.path, {}, required=True)


@dataclass(frozen=True)
class Contains(Cond):
    """Some element of the array at ``path`` (its default when absent) satisfies ``item``."""

    path: RelPath
    item: Cond

    def evaluate(self, value: Any, node: Any) -> bool | None:
        items = _lookup(value, node, self.path)
        if items is INVALID:
            return None
        if items is MISSING:
            return False
        item_node = node.node_at(self.path).items
        results = [INVALID if v is INVALID else self.item.evaluate(v, item_node) for v in items]
        if any(r is True for r in results):
            return True
        return None if any(r is INVALID or r is None for r in results) else False

    def schema(self, node: Any) -> dict[str, Any]:
        arr = node.node_at(self.path)
        assert isinstance(arr, Arr)
        default = node.default_at(self.path)
        holds_absent = default is not MISSING and self.evaluate({}, node) is True
        return _nest(self.path, {"contains": self.item.schema(arr.items)},
                     required=not holds_absent)


@dataclass(frozen=True)
class AnyOf(Cond):
    conds: tuple[Cond, ...]

    def evaluate(self, value: Any, node: Any) -> bool | None:
        results = [c.evaluate(value, node) for c in self.conds]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False

    def schema(self, node: Any) -> dict[str, Any]:
        return {"anyOf": [c.schema(node) for c in self.conds]}


Message = str | Callable[[dict[str, Any]], str]


class Implies(Rule):
    """When ``when`` holds, ``then`` must, else QV_ERR_INVAL at ``at``.

    With ``each`` (the path of an array), ``when`` is tested on every element and ``at`` is
    relative to that element, while ``then`` still reads the object the rule belongs to.
    """

    def __init__(self, rule_id: str, when: Cond, then: Cond, at: RelPath, message: Message,
                 each: RelPath | None = None) -> None:
        self.rule_id = rule_id
        self.when = when
        self.then = then
        self.at = at
        self.message = message
        self.each = each

    def _text(self, context: dict[str, Any]) -> str:
        return self.message(context) if callable(self.message) else self.message

    def check(self, value: dict[str, Any], node: Obj, path: Path, out: Problems) -> None:
        if self.each is None:
            if self.when.evaluate(value, node) is True and self.then.evaluate(value, node) is False:
                out.inval(path + self.at, self._text(value), self.rule_id)
            return
        items = _lookup(value, node, self.each)
        if not isinstance(items, list):
            return
        item_node = node.node_at(self.each).items
        for i, item in enumerate(items):
            if item is INVALID or self.when.evaluate(item, item_node) is not True:
                continue
            if self.then.evaluate(value, node) is False:
                out.inval(path + self.each + (i,) + self.at, self._text(item), self.rule_id)

    def schema(self, node: Obj) -> dict[str, Any]:
        if self.each is None:
            when = self.when.schema(node)
        else:
            when = Contains(self.each, self.when).schema(node)
        return {"if": when, "then": self.then.schema(node)}


@dataclass(frozen=True)
class NonEmpty(Cond):
    """The array at ``path`` (its default when absent) has at least one element."""

    path: RelPath

    def evaluate(self, value: Any, node: Any) -> bool | None:
        items = _lookup(value, node, self.path)
        if items is INVALID:
            return None
        return isinstance(items, list) and len(items) > 0

    def schema(self, node: Any) -> dict[str, Any]:
        return _nest(self.path, {"minItems": 1}, required=True)


class Requires(Rule):
    """Field ``field`` may only be given together with ``needs`` (JSON Schema
    ``dependentRequired``)."""

    def __init__(self, rule_id: str, field: str, needs: str) -> None:
        self.rule_id = rule_id
        self.field = field
        self.needs = needs

    def check(self, value: dict[str, Any], node: Obj, path: Path, out: Problems) -> None:
        if self.field in value and self.needs not in value:
            out.inval(path + (self.field,), f"{self.field} needs {self.needs} to be set too",
                      self.rule_id)

    def schema(self, node: Obj) -> dict[str, Any]:
        return {"dependentRequired": {self.field: [self.needs]}}
