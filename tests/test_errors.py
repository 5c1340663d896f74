"""The shared error table: C and Python agree, codes sit in their documented ranges."""

import pytest

from quantavirt.errors import QVError, code_of, error_table, strerror_name, subsystem_of

PREFIX_BY_SUBSYSTEM = {
    "core": "QV_ERR_",
    "pqc": "PQC_ERR_",
    "quac100": "QUAC100_ERR_",
    "migration": "QV_MIG_ERR_",
    "storage": "QV_STR_ERR_",
    "network": "QV_NET_ERR_",
}


def test_published_and_schema_codes():
    assert code_of("QV_ERR_NOVMX") == -3
    assert code_of("QV_SUCCESS") == 0
    for name in ("QV_ERR_INVAL", "QV_ERR_NOENT", "QV_ERR_NODEV", "QV_ERR_EXIST"):
        assert -99 <= code_of(name) <= -1


def test_every_code_is_unique_and_in_its_subsystem_range():
    table = error_table()
    assert len(set(table.values())) == len(table)
    for name, code in table.items():
        if code == 0:
            continue
        assert -599 <= code <= -1
        assert name.startswith(PREFIX_BY_SUBSYSTEM[subsystem_of(code)]), name
        assert strerror_name(code) == name


def test_qverror_shape():
    err = QVError("QV_ERR_INVAL", "native AIO is incompatible with writeback cache",
                  path="storage[0].io")
    assert err.code == code_of("QV_ERR_INVAL")
    assert err.name == "QV_ERR_INVAL"
    assert err.subsystem == "core"
    assert str(err) == (f"QV_ERR_INVAL ({err.code}): storage[0].io: "
                        "native AIO is incompatible with writeback cache")
    body = err.to_dict()
    assert body["code"] == err.code and body["subsystem"] == "core"


def test_unknown_code_and_name():
    assert strerror_name(-98) == "QV_ERR_UNKNOWN"
    with pytest.raises(KeyError):
        code_of("QV_ERR_NOPE")
