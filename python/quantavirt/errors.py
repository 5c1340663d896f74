"""The QuantaVirt error model.

The table of codes lives once, in C (csrc/include/quantavirt/errors.h); this module reads it
through cffi so Python and C can never disagree. Every failure a user can see is a
:class:`QVError` carrying its code, symbolic name, subsystem and, for configuration errors,
the JSON path of the offending value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from quantavirt._ffi import c_string, lib

# Code ranges by subsystem, from the product documentation.
SUBSYSTEM_RANGES: tuple[tuple[int, int, str], ...] = (
    (-99, -1, "core"),
    (-199, -100, "pqc"),
    (-299, -200, "quac100"),
    (-399, -300, "migration"),
    (-499, -400, "storage"),
    (-599, -500, "network"),
)


def subsystem_of(code: int) -> str:
    for low, high, name in SUBSYSTEM_RANGES:
        if low <= code <= high:
            return name
    return "core"


@cache
def error_table() -> dict[str, int]:
    """Name -> code for every code the core defines (QV_SUCCESS included)."""
    table: dict[str, int] = {}
    for i in range(lib.qv_error_count()):
        code = lib.qv_error_code_at(i)
        table[c_string(lib.qv_strerror_name(code))] = code
    return table


def code_of(name: str) -> int:
    """The numeric code of a symbolic name; KeyError for a name the table lacks."""
    return error_table()[name]


def strerror(code: int) -> str:
    return c_string(lib.qv_strerror(code))


def strerror_name(code: int) -> str:
    return c_string(lib.qv_strerror_name(code))


class QVError(Exception):
    """A QuantaVirt error: `code` (negative int), `name`, `subsystem`, `message`, `path`."""

    def __init__(self, code: int | str, message: str | None = None, path: str | None = None,
                 detail: str | None = None) -> None:
        self.code: int = code_of(code) if isinstance(code, str) else int(code)
        self.name: str = strerror_name(self.code)
        self.subsystem: str = subsystem_of(self.code)
        self.message: str = message if message is not None else strerror(self.code)
        self.path: str | None = path
        self.detail: str | None = detail
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.name} ({self.code}): {where}{self.message}"

    def to_dict(self) -> dict[str, object]:
        """The REST API's error body shape."""
        return {
            "code": self.code,
            "name": self.name,
            "message": self.message,
            "detail": self.detail or "",
            "subsystem": self.subsystem,
            **({"path": self.path} if self.path else {}),
        }


@dataclass(frozen=True)
class ErrorItem:
    """One problem found by a check that reports every problem, not only the first."""

    code: int
    path: str
    message: str

    @property
    def name(self) -> str:
        return strerror_name(self.code)

    def __str__(self) -> str:
        return f"{self.name} ({self.code}): {self.path}: {self.message}"


class QVMultiError(QVError):
    """Several problems at once (validation). Its code and path are those of the first."""

    def __init__(self, items: list[ErrorItem]) -> None:
        if not items:
            raise ValueError("QVMultiError needs at least one item")
        self.items = list(items)
        first = self.items[0]
        super().__init__(first.code, first.message, first.path)

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.items)
