"""Cross-field rules JSON Schema cannot express, and the one list of every such gap.

These read the checked config (fields that failed their own checks are ``INVALID`` and are
skipped, so one mistake is reported once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quantavirt.config.fields import INVALID, Problems, show
from quantavirt.config.sizes import format_size, parse_size

# Every check the exported JSON Schema cannot express: rule id -> why. Problems these rules
# report carry ``in_schema=False``; everything else the validator rejects, the schema rejects.
SCHEMA_GAPS: dict[str, str] = {
    "type-float": "JSON Schema's integer type admits 4.0; QuantaVirt wants a JSON integer",
    "size-range": "size strings are compared by their byte value (memory 128M..4T, limits > 0)",
    "topology-product": "cpu.topology sockets × cores × threads must equal cpu.count",
    "topology-derive": "cores (when omitted) must come out whole and within 1..128",
    "pin-range": "cpu.pin keys must be vCPU indexes below cpu.count",
    "feature-conflict": 'cpu.features may not both add and remove a flag ("+aes", "-aes")',
    "max-size": "memory.max_size must be at least memory.size",
    "memory-alignment": "memory sizes must be whole pages (4K, or the hugepage size)",
    "duplicate-disk-path": "two storage devices may not use the same path",
    "duplicate-boot-index": "two storage devices may not share a boot_index",
    "duplicate-mac": "two NICs may not share a MAC address",
}

MAX_CORES = 128
MAX_SOCKETS = 8
PAGE = 4096


def resolve_topology(count: int, topology: dict[str, Any] | None) -> tuple[int, int, int] | str:
    """(sockets, cores, threads) for ``count`` vCPUs, or the reason there is none.

    With no topology the schema's default is 1 socket of ``count`` cores; above 128 vCPUs
    (the cores limit) the fewest sockets that divide ``count`` evenly are used instead.
    Omitted cores are ``count / (sockets × threads)``.
    """
    if topology is None:
        for sockets in range(1, MAX_SOCKETS + 1):
            if count % sockets == 0 and count // sockets <= MAX_CORES:
                return sockets, count // sockets, 1
        return (f"{count} vCPUs cannot be split into at most {MAX_SOCKETS} sockets of at most "
                f"{MAX_CORES} cores; give cpu.topology explicitly")
    sockets = topology.get("sockets", 1)
    threads = topology.get("threads", 1)
    if "cores" in topology:
        cores = topology["cores"]
        if sockets * cores * threads != count:
            return (f"CPU topology does not match count: {sockets} sockets × {cores} cores × "
                    f"{threads} threads = {sockets * cores * threads}, count is {count}")
        return sockets, cores, threads
    if count % (sockets * threads) != 0 or not 1 <= count // (sockets * threads) <= MAX_CORES:
        return (f"CPU topology does not match count: {count} vCPUs do not divide into "
                f"{sockets} sockets × {threads} threads of 1..{MAX_CORES} cores")
    return sockets, count // (sockets * threads), threads


def _ok(*values: Any) -> bool:
    return all(v is not INVALID for v in values)


def _cpu_rules(doc: dict[str, Any], out: Problems) -> None:
    cpu = doc.get("cpu")
    if not isinstance(cpu, dict):
        return
    count = cpu.get("count", INVALID)
    topology = cpu.get("topology")
    if _ok(count, topology) and (topology is None or _ok(*topology.values())):
        result = resolve_topology(count, topology)
        if isinstance(result, str):
            rule = "topology-derive" if topology is None or "cores" not in topology \
                else "topology-product"
            out.inval(("cpu", "topology"), result, rule, in_schema=False)
    pin = cpu.get("pin")
    if _ok(count) and isinstance(pin, dict):
        for key in pin:
            if int(key) >= count:
                out.inval(("cpu", "pin", key), f"vCPU {key} does not exist (count is {count})",
                          "pin-range", in_schema=False)
    features = cpu.get("features")
    if isinstance(features, list):
        seen: dict[str, str] = {}
        for i, item in enumerate(features):
            if item is INVALID:
                continue
            other = seen.get(item[1:])
            if other is not None and other != item:
                out.inval(("cpu", "features", i), f"{show(item)} contradicts {show(other)}",
                          "feature-conflict", in_schema=False)
            seen.setdefault(item[1:], item)


def _memory_rules(doc: dict[str, Any], out: Problems) -> None:
    memory = doc.get("memory")
    if not isinstance(memory, dict):
        return
    size = memory.get("size", INVALID)
    max_size = memory.get("max_size")
    hugepages = memory.get("hugepages", False)
    if _ok(size, max_size) and max_size is not None and parse_size(max_size) < parse_size(size):
        out.inval(("memory", "max_size"), f"max_size {max_size} is smaller than size {size}",
                  "max-size", in_schema=False)
    if hugepages is INVALID:
        return
    unit = parse_size(hugepages) if hugepages else PAGE
    what = f"{hugepages} hugepages" if hugepages else "4K pages"
    for key in ("size", "max_size"):
        value = memory.get(key)
        if isinstance(value, str) and parse_size(value) % unit:
            out.inval(("memory", key), f"{value} is not a whole number of {what} "
                      f"({format_size(unit)})", "memory-alignment", in_schema=False)


def _duplicates(items: Any, key: str, what: str, rule: str, array: str, out: Problems,
                normal: Callable[[Any], Any] = lambda v: v) -> None:
    if not isinstance(items, list):
        return
    first: dict[Any, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get(key, INVALID) is INVALID:
            continue
        value = normal(item[key])
        if value in first:
            out.inval((array, i, key), f"{what} {show(item[key])} is already used by "
                      f"{array}[{first[value]}]", rule, in_schema=False)
        else:
            first[value] = i


def _device_rules(doc: dict[str, Any], out: Problems) -> None:
    _duplicates(doc.get("storage"), "path", "path", "duplicate-disk-path", "storage", out)
    _duplicates(doc.get("storage"), "boot_index", "boot_index", "duplicate-boot-index",
                "storage", out)
    _duplicates(doc.get("network"), "mac", "MAC", "duplicate-mac", "network", out,
                normal=str.lower)


CROSS_FIELD_RULES: tuple[Callable[[dict[str, Any], Problems], None], ...] = (
    _cpu_rules,
    _memory_rules,
    _device_rules,
)


def check_cross_field(doc: Any, out: Problems) -> None:
    if isinstance(doc, dict):
        for rule in CROSS_FIELD_RULES:
            rule(doc, out)
