"""The building blocks of the field model: typed nodes that check a value, know their
defaults and emit their own JSON Schema, so the validator and the exported schema are one
description and cannot drift apart.

A node's ``check`` returns the checked value (dicts keep only known keys) or ``INVALID`` and
records every problem it finds in a :class:`Problems` list; it never stops at the first.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from quantavirt.config.sizes import format_size, parse_size

Path = tuple[str | int, ...]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


INVALID: Any = _Sentinel("INVALID")  # a value that failed its own checks
MISSING: Any = _Sentinel("MISSING")  # no value and no default
FILL: Any = _Sentinel("FILL")  # default of an object field: the object with its own defaults

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Path) -> str:
    """JSON path as users read it: ``storage[0].io``, ``cpu.pin.3``; ``$`` is the root."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text or "$"


def show(value: Any, limit: int = 60) -> str:
    """A short, unambiguous rendering of a user's value for messages."""
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=False, sort_keys=False)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def same(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers (``True != 1``), as in JSON Schema."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


@dataclass(frozen=True)
class Problem:
    """One validation finding. ``rule`` names the check; ``in_schema`` is False for the checks
    the exported JSON Schema cannot express (see validate.SCHEMA_GAPS)."""

    code: str
    path: str
    message: str
    rule: str
    in_schema: bool = True


@dataclass
class Problems:
    items: list[Problem] = field(default_factory=list)

    def add(self, code: str, path: Path, message: str, rule: str, in_schema: bool = True) -> None:
        self.items.append(Problem(code, format_path(path), message, rule, in_schema))

    def inval(self, path: Path, message: str, rule: str, in_schema: bool = True) -> None:
        self.add("QV_ERR_INVAL", path, message, rule, in_schema)


class Node:
    """A typed value in the configuration."""

    doc: str = ""

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def effective(self, value: Any) -> Any:
        """The value with every default below it filled in (value already checked)."""
        return copy.deepcopy(value)

    def _type_error(self, value: Any, path: Path, out: Problems, expected: str) -> Any:
        got = "null" if value is None else f"{json_type(value)} {show(value)}"
        out.inval(path, f"expected {expected}, got {got}", "type")
        return INVALID


class Bool(Node):
    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if not isinstance(value, bool):
            return self._type_error(value, path, out, "a boolean")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Int(Node):
    def __init__(self, minimum: int, maximum: int) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            # JSON Schema's "integer" admits 4.0; QuantaVirt's types are strict.
            out.inval(path, f"expected an integer, got number {show(value)}", "type-float",
                      in_schema=False)
            return INVALID
        if isinstance(value, bool) or not isinstance(value, int):
            return self._type_error(value, path, out, "an integer")
        if not self.minimum <= value <= self.maximum:
            out.inval(path, f"{show(value)} is out of range {self.minimum}..{self.maximum}",
                      "range")
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Pattern:
    """A regular expression a string must match in full, with the message when it does not.
    Patterns are anchored (``^...$``) and ECMA-262 compatible, for the JSON Schema."""

    regex: str
    message: str


class Str(Node):
    def __init__(self, *, min_len: int = 0, max_len: int | None = None,
                 patterns: Sequence[Pattern] = (), forbid: Sequence[str] = ()) -> None:
        self.min_len = min_len
        self.max_len = max_len
        self.patterns = tuple(patterns)
        self.forbid = tuple(forbid)
        self._compiled = [(re.compile(p.regex), p.message) for p in self.patterns]

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if not isinstance(value, str):
            return self._type_error(value, path, out, "a string")
        if len(value) < self.min_len:
            out.inval(path, f"{show(value)} is shorter than {self.min_len} characters", "length")
            return INVALID
        if self.max_len is not None and len(value) > self.max_len:
            out.inval(path, f"{show(value)} is longer than {self.max_len} characters", "length")
            return INVALID
        for regex, message in self._compiled:
            if regex.fullmatch(value) is None:
                out.inval(path, f"{show(value)}: {message}", "pattern")
                return INVALID
        if value in self.forbid:
            out.inval(path, f"{show(value)} is not allowed here", "pattern")
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "string"}
        if self.min_len:
            s["minLength"] = self.min_len
        if self.max_len is not None:
            s["maxLength"] = self.max_len
        if len(self.patterns) == 1:
            s["pattern"] = self.patterns[0].regex
        elif self.patterns:
            s["allOf"] = [{"pattern": p.regex} for p in self.patterns]
        if self.forbid:
            s["not"] = {"enum": list(self.forbid)}
        return s


class Enum(Node):
    def __init__(self, *values: str) -> None:
        self.values = values

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if not isinstance(value, str):
            return self._type_error(value, path, out, "a string")
        if value not in self.values:
            hint = difflib.get_close_matches(value, self.values, n=1)
            more = f" (did you mean {show(hint[0])}?)" if hint else ""
            out.inval(path, f"{show(value)} is not one of {', '.join(self.values)}{more}",
                      "enum")
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.values)}


# Digits with an optional K/M/G/T suffix (powers of 1024); 20 digits bound the integer.
SIZE_REGEX = r"^[0-9]{1,20}[KMGTkmgt]?$"


class Size(Node):
    """A size string ("512M"); the byte range is checked here but is beyond JSON Schema."""

    def __init__(self, minimum: int, maximum: int) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if not isinstance(value, str):
            return self._type_error(value, path, out, 'a size string such as "512M"')
        if re.fullmatch(SIZE_REGEX, value) is None:
            out.inval(path, f"{show(value)} is not a size (digits with an optional K, M, G or "
                      "T suffix, powers of 1024)", "pattern")
            return INVALID
        nbytes = parse_size(value)
        if nbytes < self.minimum:
            out.inval(path, f"{show(value)} is below the minimum ({format_size(self.minimum)})",
                      "size-range", in_schema=False)
            return INVALID
        if nbytes > self.maximum:
            out.inval(path, f"{show(value)} is above the maximum ({format_size(self.maximum)})",
                      "size-range", in_schema=False)
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": SIZE_REGEX}

    def effective(self, value: Any) -> Any:
        return format_size(parse_size(value))


class OneOf(Node):
    """A value that must equal one of a few JSON constants of mixed type (hugepages)."""

    def __init__(self, *values: Any, expected: str) -> None:
        self.values = values
        self.expected = expected

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if not any(same(value, v) for v in self.values):
            out.inval(path, f"expected {self.expected}, got {show(value)}", "enum")
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.values)}


@dataclass
class Field:
    name: str
    node: Node
    required: bool = False
    default: Any = MISSING  # a JSON value, FILL (object of defaults) or MISSING (none)
    doc: str = ""
    default_doc: str | None = None  # how the default is chosen when it is not a constant


class Rule:
    """A cross-field rule attached to an object node (see conditions.py)."""

    rule_id: str

    def check(self, value: dict[str, Any], node: Obj, path: Path, out: Problems) -> None:
        raise NotImplementedError

    def schema(self, node: Obj) -> dict[str, Any]:
        raise NotImplementedError


class Obj(Node):
    def __init__(self, *fields: Field, rules: Sequence[Rule] = (), doc: str = "") -> None:
        self.fields = fields
        self.by_name = {f.name: f for f in fields}
        self.rules = list(rules)
        self.doc = doc

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if not isinstance(value, dict):
            return self._type_error(value, path, out, "an object")
        for key in value:
            if key not in self.by_name:
                hint = difflib.get_close_matches(str(key), list(self.by_name), n=1, cutoff=0.6)
                more = f" (did you mean {show(hint[0])}?)" if hint else ""
                known = ", ".join(self.by_name)
                out.inval(path + (str(key),), f"unknown field {show(str(key))}{more}; "
                          f"known fields: {known}", "unknown-field")
        checked: dict[str, Any] = {}
        for f in self.fields:
            if f.name in value:
                checked[f.name] = f.node.check(value[f.name], path + (f.name,), out)
            elif f.required:
                out.inval(path + (f.name,), "required field is missing", "required")
        for rule in self.rules:
            rule.check(checked, self, path, out)
        return checked

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "object"}
        if self.doc:
            s["description"] = self.doc
        props: dict[str, Any] = {}
        for f in self.fields:
            sub = f.node.schema()
            if f.doc:
                sub = {"description": f.doc, **sub}
            if f.default is FILL:
                sub["default"] = f.node.effective({})
            elif f.default is not MISSING:
                sub["default"] = f.default
            props[f.name] = sub
        s["properties"] = props
        required = [f.name for f in self.fields if f.required]
        if required:
            s["required"] = required
        s["additionalProperties"] = False
        if self.rules:
            s["allOf"] = [rule.schema(self) for rule in self.rules]
        return s

    def effective(self, value: Any) -> Any:
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.name in value:
                out[f.name] = f.node.effective(value[f.name])
            elif f.default is FILL:
                out[f.name] = f.node.effective({})
            elif f.default is not MISSING:
                out[f.name] = copy.deepcopy(f.default)
        return out

    def default_at(self, path: Sequence[str]) -> Any:
        """The default of a nested field (MISSING when it has none)."""
        node: Node = self
        default: Any = MISSING
        for name in path:
            if not isinstance(node, Obj) or name not in node.by_name:
                raise KeyError(".".join(path))
            f = node.by_name[name]
            node, default = f.node, f.default
        return node.effective({}) if default is FILL else default

    def node_at(self, path: Sequence[str]) -> Node:
        node: Node = self
        for name in path:
            if not isinstance(node, Obj):
                raise KeyError(".".join(path))
            node = node.by_name[name].node
        return node


class Arr(Node):
    def __init__(self, items: Node, *, min_items: int = 0, max_items: int,
                 unique: bool = False, what: str = "items", empty: str | None = None) -> None:
        self.items = items
        self.empty = empty
        self.min_items = min_items
        self.max_items = max_items
        self.unique = unique
        self.what = what

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if not isinstance(value, list):
            return self._type_error(value, path, out, "an array")
        if not value and self.empty:
            out.inval(path, self.empty, "count")
        elif len(value) < self.min_items:
            out.inval(path, f"needs at least {self.min_items} {self.what}, got {len(value)}",
                      "count")
        if len(value) > self.max_items:
            out.inval(path, f"at most {self.max_items} {self.what} are allowed, got "
                      f"{len(value)}", "count")
            return INVALID
        checked = [self.items.check(v, path + (i,), out) for i, v in enumerate(value)]
        if self.unique:
            for i, v in enumerate(value):
                if any(same(v, w) for w in value[:i]):
                    out.inval(path + (i,), f"{show(v)} is listed twice", "unique")
                    checked[i] = INVALID
        return checked

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "array", "items": self.items.schema()}
        if self.min_items:
            s["minItems"] = self.min_items
        s["maxItems"] = self.max_items
        if self.unique:
            s["uniqueItems"] = True
        return s

    def effective(self, value: Any) -> Any:
        return [self.items.effective(v) for v in value]


class Map(Node):
    """An object with user-chosen keys (cpu.pin: vCPU index -> pCPU index)."""

    def __init__(self, key: Pattern, values: Node) -> None:
        self.key = key
        self.values = values
        self._key_re = re.compile(key.regex)

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if not isinstance(value, dict):
            return self._type_error(value, path, out, "an object")
        checked: dict[str, Any] = {}
        for key, item in value.items():
            key = str(key)
            if self._key_re.fullmatch(key) is None:
                out.inval(path + (key,), f"key {show(key)}: {self.key.message}", "pattern")
                continue
            checked[key] = self.values.check(item, path + (key,), out)
        return checked

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "propertyNames": {"pattern": self.key.regex},
                "additionalProperties": self.values.schema()}

