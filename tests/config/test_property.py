"""Property tests: any JSON value, and any mutation of a valid config, gives an effective
config or a QVError, never another exception; effective configs are fixed points."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from qv_config_cases import GOOD

from quantavirt.config import validate
from quantavirt.config.loader import parse_json
from quantavirt.errors import QVError
from quantavirt.host import HostInfo

JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                | st.text(max_size=20) | st.sampled_from(["512M", "1G", "host", "native",
                                                          "/a", "52:54:00:00:00:01"]))
JSON = st.recursive(JSON_SCALARS,
                    lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=5),
                    max_leaves=30)
HOST = HostInfo(sev=True, networks=frozenset({"br0"}), hugepages={})


def outcome(doc: Any, check_host: bool) -> dict[str, Any] | None:
    try:
        result = validate(doc, check_host=check_host, host=HOST)
    except QVError as err:
        assert err.name.startswith("QV_ERR_")
        return None
    json.dumps(result, allow_nan=False)  # plain JSON
    assert validate(result, check_host=False) == result  # a fixed point
    return result


@given(JSON)
@settings(max_examples=300, deadline=None)
def test_any_json_value(doc: Any) -> None:
    outcome(doc, check_host=False)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)] + [value]
    return [value]


# Values that occur in valid configs: swapping them around keeps many mutants valid, so the
# effective-config path is exercised too, not only rejection.
PLAUSIBLE = st.sampled_from(sorted({json.dumps(v, sort_keys=True) for v in _leaves(GOOD)}))
REPLACEMENT = PLAUSIBLE.map(json.loads) | JSON


def _mutate(data: st.DataObject, doc: Any, depth: int = 0) -> Any:
    """``doc`` with one node replaced, removed, or given an extra key, somewhere inside."""
    if isinstance(doc, dict) and doc and depth < 6 and (depth == 0 or data.draw(st.booleans())):
        key = data.draw(st.sampled_from(sorted(doc)))
        action = data.draw(st.sampled_from(["descend", "replace", "delete", "add"]))
        doc = dict(doc)
        if action == "descend":
            doc[key] = _mutate(data, doc[key], depth + 1)
        elif action == "replace":
            doc[key] = data.draw(REPLACEMENT)
        elif action == "delete":
            del doc[key]
        else:
            doc[data.draw(st.text(max_size=10))] = data.draw(JSON)
        return doc
    if isinstance(doc, list) and doc and depth < 6 and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(doc) - 1))
        doc = list(doc)
        doc[index] = _mutate(data, doc[index], depth + 1)
        return doc
    return data.draw(REPLACEMENT)


@given(st.data())
@settings(max_examples=400, deadline=None)
def test_mutated_valid_configs(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(GOOD)))
    doc = _mutate(data, GOOD[name])
    outcome(doc, check_host=data.draw(st.booleans()))


@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
@settings(max_examples=300, deadline=None)
def test_any_text_parses_or_is_inval(text: str) -> None:
    try:
        parse_json(text)
    except QVError as err:
        assert err.name == "QV_ERR_INVAL"


PATHS = st.text(max_size=30).map(lambda t: "/" + t) | st.sampled_from(
    ["/", "/dev/null", "/proc", "/etc/hostname", "/\ud800", "/tmp/\udcff", "/" + "a" * 5000])


@given(disk=PATHS, log=PATHS, kernel=PATHS, initrd=PATHS, name=st.sampled_from(["vm1", "lo"]))
@settings(max_examples=200, deadline=None)
def test_host_rules_on_any_absolute_path(disk: str, log: str, kernel: str, initrd: str,
                                         name: str) -> None:
    doc = {**GOOD["base"], "storage": [{"path": disk}], "console": {"log": log},
           "boot": {"kernel": kernel, "initrd": initrd},
           "network": [{"network": name}]}
    outcome(doc, check_host=True)
