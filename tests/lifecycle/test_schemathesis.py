"""Property-based run of the whole API (schemathesis over /api/v1/openapi.json) against a real
daemon over TCP: a bounded number of generated requests per operation; no answer may be a
5xx except the documented 501 QV_ERR_NOTSUP of the features that have not landed, every error
has the documented shape, and every answer is JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from .conftest import Api, Daemon

schemathesis = pytest.importorskip("schemathesis")
EXAMPLES_PER_OPERATION = 15


def test_api_fuzz_no_unexpected_5xx(daemon: Daemon,
                                    make_config: Callable[..., dict[str, Any]]) -> None:
    api = Api(daemon, "tcp")
    assert api.request("POST", "/vms", make_config("fuzz")).status == 201
    doc = api.request("GET", "/openapi.json").body
    schema = schemathesis.openapi.from_dict(doc)
    base = f"http://127.0.0.1:{daemon.port}/api/v1"
    headers = {"Authorization": f"Bearer {daemon.token}"}
    seen: dict[int, int] = {}
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 19

    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            resp = case.call(base_url=base, headers=headers, timeout=60)
            seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
            body = resp.json()
            if resp.status_code >= 500:
                assert resp.status_code == 501, (case.method, case.path, body)
                assert body["error"]["name"] == "QV_ERR_NOTSUP"
            if resp.status_code >= 400:
                err = body["error"]
                assert set(err) >= {"code", "name", "message", "detail", "subsystem"}
                assert err["code"] < 0

        run()
    assert daemon.proc.poll() is None
    assert sum(seen.values()) >= 150
    assert api.request("GET", "/vms").status == 200
