"""Bad configs: every documented code at its JSON path, all problems reported at once,
did-you-mean hints."""

from __future__ import annotations

from typing import Any

import pytest
from qv_config_cases import BAD, Bad, apply, base

from quantavirt.config import validate
from quantavirt.errors import QVMultiError, code_of


def errors_of(doc: Any, **kwargs: Any) -> QVMultiError:
    with pytest.raises(QVMultiError) as info:
        validate(doc, check_host=False, **kwargs)
    return info.value


def test_the_table_is_large_and_distinct() -> None:
    assert len(BAD) >= 60
    assert len({case.id for case in BAD}) == len(BAD)
    assert len({repr(case.changes) for case in BAD}) == len(BAD)


@pytest.mark.parametrize("case", BAD, ids=[case.id for case in BAD])
def test_bad_config(case: Bad) -> None:
    err = errors_of(case.doc())
    reported = [(item.name, item.path) for item in err.items]
    assert (case.code, case.path) in reported, reported
    item = next(i for i in err.items if i.path == case.path)
    assert item.code == code_of(case.code)
    assert item.message


def test_value_and_rule_are_in_the_message() -> None:
    err = errors_of(apply(base(), [(("storage", 0, "io"), "native")]))
    assert str(err.items[0]) == ("QV_ERR_INVAL (-1): storage[0].io: native AIO is incompatible"
                                 " with writeback cache (use cache none or directsync)")
    err = errors_of(apply(base(), [(("cpu", "count"), "4")]))
    assert err.items[0].message == 'expected an integer, got string "4"'
    err = errors_of(apply(base(), [(("network", 0, "mtu"), 9001)]))
    assert err.items[0].message == "9001 is out of range 576..9000"


def test_all_errors_are_reported() -> None:
    doc = apply(base(), [
        (("name",), "bad name"),
        (("cpu", "count"), 0),
        (("memory", "size"), "64M"),
        (("storage", 0, "io"), "native"),
        (("network", 0, "mac"), "01:00:00:00:00:01"),
    ])
    err = errors_of(doc)
    assert [item.path for item in err.items] == [
        "name", "cpu.count", "memory.size", "storage[0].io", "network[0].mac"]
    assert all(item.name == "QV_ERR_INVAL" for item in err.items)
    assert err.path == "name"  # the QVMultiError itself carries the first


def test_an_invalid_field_is_reported_once() -> None:
    # cache is wrong: the io/cache rule stays quiet instead of piling on.
    doc = apply(base(), [(("storage", 0, "io"), "native"), (("storage", 0, "cache"), "nope")])
    assert [i.path for i in errors_of(doc).items] == ["storage[0].cache"]


@pytest.mark.parametrize(("changes", "path", "hint"), [
    ([(("cpu", "cout"), 4)], "cpu.cout", "did you mean \"count\"?"),
    ([(("memroy",), {"size": "1G"})], "memroy", "did you mean \"memory\"?"),
    ([(("storage", 0, "chache"), "none")], "storage[0].chache", "did you mean \"cache\"?"),
    ([(("cpu", "features"), ["+avx512"])], "cpu.features[0]", "did you mean \"+avx512f\"?"),
    ([(("storage", 0, "cache"), "writebak")], "storage[0].cache",
     "did you mean \"writeback\"?"),
])
def test_did_you_mean(changes: list[Any], path: str, hint: str) -> None:
    err = errors_of(apply(base(), changes))
    item = next(i for i in err.items if i.path == path)
    assert hint in item.message


def test_unknown_field_without_close_match_lists_known_fields() -> None:
    err = errors_of(apply(base(), [(("cpu", "zzzzzz"), 1)]))
    assert "did you mean" not in err.items[0].message
    assert "known fields: count, model" in err.items[0].message


def test_odd_keys_are_quoted_in_paths() -> None:
    err = errors_of(apply(base(), [(("cpu", "a.b"), 1)]))
    assert err.items[0].path == 'cpu["a.b"]'
