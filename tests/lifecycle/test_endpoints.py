"""Every endpoint the product reference lists (quantavirt-product.md, "Management API") exists
on the daemon, appears in its OpenAPI document, and answers errors in the documented shape
``{"error": {"code": -N, "name": "QV_ERR_...", "message", "detail", "subsystem"}}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from quantavirt.errors import code_of

from .conftest import Api, Reply

# (method, path) exactly as the product reference lists them.
REFERENCE = [
    ("GET", "/vms"), ("POST", "/vms"),
    ("GET", "/vms/{name}"), ("PATCH", "/vms/{name}"), ("DELETE", "/vms/{name}"),
    *[("POST", f"/vms/{{name}}/{op}") for op in (
        "start", "stop", "pause", "resume", "reset", "migrate", "clone", "attest")],
    ("GET", "/vms/{name}/stats"),
    ("GET", "/vms/{name}/snapshots"), ("POST", "/vms/{name}/snapshots"),
    ("POST", "/vms/{name}/snapshots/{snap}/restore"),
    ("DELETE", "/vms/{name}/snapshots/{snap}"),
]
PER_VM = [(m, p) for m, p in REFERENCE if "{name}" in p]
SHAPE = {"code", "name", "message", "detail", "subsystem"}


def check_shape(r: Reply, status: int, name: str) -> None:
    assert r.status == status, (r.status, r.body)
    assert r.raw and isinstance(r.body, dict) and set(r.body) == {"error"}, r.raw
    err = r.body["error"]
    assert SHAPE <= set(err) <= SHAPE | {"path", "problems"}, err
    assert err["name"] == name and err["code"] == code_of(name) < 0
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["detail"], str) and isinstance(err["subsystem"], str)


def test_openapi_lists_every_reference_endpoint(api: Api) -> None:
    paths = api.request("GET", "/openapi.json").body["paths"]
    for method, path in REFERENCE:
        assert method.lower() in paths.get(path, {}), (method, path)


@pytest.mark.parametrize(("method", "path"), PER_VM)
def test_missing_vm_is_404_noent_in_shape(api: Api, method: str, path: str) -> None:
    """Each per-VM endpoint exists: for a VM that does not exist it answers the VM's 404,
    not the router's "no such endpoint"."""
    r = api.request(method, path.format(name="ghost", snap="s1"),
                    {} if method in ("POST", "PATCH") else None)
    check_shape(r, 404, "QV_ERR_NOENT")
    assert "ghost" in r.body["error"]["message"], r.body


def test_router_errors_in_shape(api: Api) -> None:
    r = api.request("GET", "/nothing/here")
    check_shape(r, 404, "QV_ERR_NOENT")
    assert r.body["error"]["message"] == "no such endpoint"
    check_shape(api.request("PUT", "/vms"), 405, "QV_ERR_INVAL")
    check_shape(api.request("POST", "/vms/ghost/teleport", {}), 404, "QV_ERR_NOENT")
    check_shape(api.request("GET", "/vms/bad*name"), 400, "QV_ERR_INVAL")
    check_shape(api.request("POST", "/vms", raw=b"{"), 400, "QV_ERR_INVAL")
    check_shape(api.request("GET", "/vms", token="wrong"), 401, "QV_ERR_PERM")
    r = api.request("POST", "/vms", raw=b"x" * (2 << 20))
    check_shape(r, 413, "QV_ERR_INVAL")


def test_existing_vm_errors_in_shape(api: Api,
                                     make_config: Callable[..., dict[str, Any]]) -> None:
    assert api.request("POST", "/vms", make_config("a")).status == 201
    check_shape(api.request("POST", "/vms", make_config("a")), 409, "QV_ERR_EXIST")
    check_shape(api.request("POST", "/vms/a/pause"), 409, "QV_ERR_STATE")
    check_shape(api.request("GET", "/vms/a/stats"), 409, "QV_ERR_STATE")
    check_shape(api.request("POST", "/vms/a/stop", {"force": "yes"}), 400, "QV_ERR_INVAL")
    check_shape(api.request("POST", "/vms/a/stop", {"timeout": -1}), 400, "QV_ERR_INVAL")
    check_shape(api.request("PATCH", "/vms/a", {"name": "b"}), 400, "QV_ERR_INVAL")
    r = api.request("PATCH", "/vms/a", {"cpu": {"count": 0}})
    check_shape(r, 400, "QV_ERR_INVAL")
    assert all({"code", "name", "path", "message"} <= set(p) for p in r.body["error"]["problems"])
    for method, path in PER_VM:
        if any(x in path for x in ("migrate", "clone", "attest", "snapshots")):
            r = api.request(method, path.format(name="a", snap="s1"),
                            {} if method == "POST" else None)
            check_shape(r, 501, "QV_ERR_NOTSUP")
            assert r.body["error"]["message"].startswith("not implemented")
