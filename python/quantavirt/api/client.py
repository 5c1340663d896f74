"""How the CLI reaches the management API: HTTP over the daemon's Unix socket (stdlib
http.client with a Unix-socket connection), the bearer token read from $QUANTAVIRT_HOME.

`lifecycle_backend()` is the daemon when one answers on the socket ($QUANTAVIRT_API_SOCKET,
default /var/run/quantavirt/api.sock), else None and the CLI works on the state directory
itself (quantavirt.lifecycle)."""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import quote

from quantavirt.api.server import DEFAULT_SOCKET, PREFIX, token_path
from quantavirt.errors import ErrorItem, QVError, QVMultiError

SOCKET_ENV = "QUANTAVIRT_API_SOCKET"


def socket_path() -> str:
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


def error_from_body(body: Any, status: int) -> QVError:
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("code"), int):
        return QVError("QV_ERR_IO", f"the daemon answered HTTP {status} without a QV error")
    problems = err.get("problems")
    if isinstance(problems, list) and problems:
        return QVMultiError([ErrorItem(int(p["code"]), p.get("path", ""), p.get("message", ""))
                             for p in problems])
    return QVError(err["code"], err.get("message"), path=err.get("path"),
                   detail=err.get("detail") or None)


class Client:
    def __init__(self, path: str | None = None, token: str | None = None,
                 timeout: float = 300.0) -> None:
        self.path = path or socket_path()
        self.token = token
        self.timeout = timeout

    def request(self, method: str, route: str, body: Any = None) -> Any:
        if self.token is None:
            try:
                self.token = token_path().read_text().strip()
            except OSError as e:
                raise QVError("QV_ERR_PERM", f"cannot read the API token {token_path()}: "
                              f"{e.strerror}") from None
        conn = UnixHTTPConnection(self.path, self.timeout)
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, PREFIX + route, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except OSError as e:
            raise QVError("QV_ERR_IO", f"talking to the daemon on {self.path}: {e}") from None
        finally:
            conn.close()
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            raise QVError("QV_ERR_IO", f"the daemon answered HTTP {resp.status} with non-JSON"
                          ) from None
        if resp.status >= 400:
            raise error_from_body(value, resp.status)
        return value

    def alive(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            try:
                s.connect(self.path)
            except OSError:
                return False
        return True


class RemoteLifecycle:
    """The operations of quantavirt.lifecycle, done by the daemon."""

    def __init__(self, client: Client) -> None:
        self.c = client

    def _vm(self, name: str, suffix: str = "") -> str:
        return f"/vms/{quote(name, safe='')}{suffix}"

    def create(self, doc: Any) -> dict[str, Any]:
        return self.c.request("POST", "/vms", doc)  # type: ignore[no-any-return]

    def list_vms(self) -> list[dict[str, Any]]:
        return self.c.request("GET", "/vms")["vms"]  # type: ignore[no-any-return]

    def show(self, name: str) -> dict[str, Any]:
        return self.c.request("GET", self._vm(name))  # type: ignore[no-any-return]

    def export(self, name: str) -> dict[str, Any]:
        return self.show(name)["config"]  # type: ignore[no-any-return]

    def start(self, name: str) -> dict[str, Any]:
        return self.c.request("POST", self._vm(name, "/start"))  # type: ignore[no-any-return]

    def stop(self, name: str, force: bool = False, timeout: float = 30.0) -> dict[str, Any]:
        return self.c.request("POST", self._vm(name, "/stop"),  # type: ignore[no-any-return]
                              {"force": force, "timeout": timeout})

    def pause(self, name: str) -> dict[str, Any]:
        return self.c.request("POST", self._vm(name, "/pause"))  # type: ignore[no-any-return]

    def resume(self, name: str) -> dict[str, Any]:
        return self.c.request("POST", self._vm(name, "/resume"))  # type: ignore[no-any-return]

    def reset(self, name: str) -> dict[str, Any]:
        return self.c.request("POST", self._vm(name, "/reset"))  # type: ignore[no-any-return]

    def destroy(self, name: str) -> dict[str, Any]:
        return self.c.request("DELETE", self._vm(name))  # type: ignore[no-any-return]

    def stats(self, name: str) -> dict[str, Any]:
        return self.c.request("GET", self._vm(name, "/stats"))  # type: ignore[no-any-return]


def lifecycle_backend() -> Any:
    """RemoteLifecycle when a daemon answers on the socket, else the local module."""
    client = Client()
    if os.path.exists(client.path) and client.alive():
        return RemoteLifecycle(client)
    from quantavirt import lifecycle

    return lifecycle
