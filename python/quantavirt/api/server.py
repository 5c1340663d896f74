"""`quantavirt serve`: the management API (aiohttp) on a Unix socket and on TCP.

Every endpoint under /api/v1 needs ``Authorization: Bearer <token>``; the token is made at the
first start and kept 0600 in $QUANTAVIRT_HOME/api-token. Errors are
``{"error": {code, name, message, detail, subsystem}}`` with an HTTP status from the code.
Lifecycle work runs in a thread pool (quantavirt.lifecycle); each VM runs in its own runner
process, which this daemon reaps and watches: a runner that dies leaves its VM CRASHED and
the daemon, and every other VM, running.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets
import signal
import socket
import stat
import subprocess
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from quantavirt import lifecycle, records, state
from quantavirt.api.openapi import document
from quantavirt.config.loader import parse_json
from quantavirt.errors import QVError, QVMultiError
from quantavirt.logs import log, set_level

SUBSYSTEM = "api"
DEFAULT_SOCKET = "/var/run/quantavirt/api.sock"
DEFAULT_LISTEN = "127.0.0.1:9400"
MAX_BODY = 1 << 20
PREFIX = "/api/v1"
TOKEN_FILE = "api-token"

STATUS_BY_NAME = {"QV_ERR_INVAL": 400, "QV_ERR_PERM": 403, "QV_ERR_NOENT": 404,
                  "QV_ERR_EXIST": 409, "QV_ERR_STATE": 409, "QV_ERR_BUSY": 409,
                  "QV_ERR_NOTSUP": 501, "QV_ERR_TIMEOUT": 504,
                  # the host cannot run the VM now (no KVM, missing capability, memory)
                  "QV_ERR_NOVMX": 503, "QV_ERR_NODEV": 503, "QV_ERR_NOMEM": 503}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_path() -> Path:
    return state.home() / TOKEN_FILE


def ensure_token() -> str:
    """The API token; made (random, 0600, exclusive create) when there is none yet."""
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        text = path.read_text().strip()
        if len(text) < 32:
            raise QVError("QV_ERR_PERM", f"{path}: the API token is too short; remove the file "
                          "to make a new one") from None
        return text
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    records.fsync_dir(path.parent)
    return token


def error_response(err: QVError, status: int | None = None) -> web.Response:
    body: dict[str, Any] = {"error": err.to_dict()}
    if isinstance(err, QVMultiError):
        body["error"]["problems"] = [{"code": i.code, "name": i.name, "path": i.path,
                                      "message": i.message} for i in err.items]
    if status is None:
        status = STATUS_BY_NAME.get(err.name, 500)
    return web.json_response(body, status=status)


def _unauthorized() -> web.Response:
    resp = error_response(QVError("QV_ERR_PERM", "authentication required"), 401)
    resp.headers["WWW-Authenticate"] = 'Bearer realm="quantavirt"'
    return resp


def make_app(token: str, supervisor: Supervisor | None = None) -> web.Application:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            return _unauthorized()  # same answer for every path: nothing leaks
        try:
            return await handler(request)
        except QVError as e:
            return error_response(e)
        except web.HTTPException as e:
            if e.status == 404:
                return error_response(QVError("QV_ERR_NOENT", "no such endpoint"), 404)
            if e.status == 405:
                return error_response(QVError("QV_ERR_INVAL", "method not allowed here"), 405)
            if e.status == 413:
                return error_response(QVError("QV_ERR_INVAL", "request body too large"), 413)
            if e.status >= 400:  # any other HTTP error the framework raises: still JSON
                name = "QV_ERR_INVAL" if e.status < 500 else "QV_ERR_INTERNAL"
                return error_response(QVError(name, e.reason or "bad request"), e.status)
            raise
        except Exception as e:  # a bug: log it, answer without internals
            log("ERROR", SUBSYSTEM, f"{request.method} {request.path}: {e!r}")
            return error_response(QVError("QV_ERR_INTERNAL", "internal error"), 500)

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    spawned = supervisor.adopt if supervisor else None

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def work() -> Any:
            if supervisor is not None:
                supervisor.sweep_children()
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, work)

    async def body(request: web.Request, required: bool) -> Any:
        raw = await request.read()
        if not raw.strip():
            if required:
                raise QVError("QV_ERR_INVAL", "a JSON request body is required")
            return {}
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise QVError("QV_ERR_INVAL", "the request body is not UTF-8") from None
        return parse_json(text, source="body")

    async def obj_body(request: web.Request, required: bool = False) -> dict[str, Any]:
        value = await body(request, required)
        if not isinstance(value, dict):
            raise QVError("QV_ERR_INVAL", "the request body must be a JSON object")
        return value

    def name_of(request: web.Request) -> str:
        return records.check_name(request.match_info["name"])

    async def list_vms(request: web.Request) -> web.Response:
        return web.json_response({"vms": await run(lifecycle.list_vms)})

    async def create_vm(request: web.Request) -> web.Response:
        doc = await body(request, True)
        try:
            rec = await run(lifecycle.create, doc)
        except QVMultiError as e:
            # Only a name in use: a conflict; anything else wrong with the config: 400.
            taken = all(i.name == "QV_ERR_EXIST" for i in e.items)
            return error_response(e, 409 if taken else 400)
        return web.json_response(rec, status=201)

    async def show_vm(request: web.Request) -> web.Response:
        return web.json_response(await run(lifecycle.show, name_of(request)))

    async def patch_vm(request: web.Request) -> web.Response:
        name = name_of(request)
        changes = await obj_body(request, True)
        try:
            return web.json_response(await run(lifecycle.patch, name, changes))
        except QVMultiError as e:
            return error_response(e, 400)

    async def delete_vm(request: web.Request) -> web.Response:
        return web.json_response(await run(lifecycle.destroy, name_of(request)))

    async def start_vm(request: web.Request) -> web.Response:
        name = name_of(request)
        await obj_body(request)
        return web.json_response(await run(lifecycle.start, name, spawned))

    async def stop_vm(request: web.Request) -> web.Response:
        name = name_of(request)
        opts = await obj_body(request)
        force = opts.get("force", False)
        timeout = opts.get("timeout", 30)
        if not isinstance(force, bool):
            raise QVError("QV_ERR_INVAL", "force must be true or false", path="force")
        if (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                or not 0 <= timeout <= 3600):
            raise QVError("QV_ERR_INVAL", "timeout must be 0..3600 seconds", path="timeout")
        return web.json_response(await run(lifecycle.stop, name, force, float(timeout)))

    def simple(fn: Callable[[str], dict[str, Any]]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            name = name_of(request)
            await obj_body(request)
            return web.json_response(await run(fn, name))
        return handler

    async def stats_vm(request: web.Request) -> web.Response:
        return web.json_response(await run(lifecycle.stats, name_of(request)))

    def not_implemented(what: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            name = name_of(request)
            if request.can_read_body:
                await body(request, False)
            await run(records.read, name)  # 404 for a VM that does not exist
            raise QVError("QV_ERR_NOTSUP", f"not implemented: {what} has not landed yet")
        return handler

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document())

    p = PREFIX
    app.router.add_get(f"{p}/openapi.json", openapi)
    app.router.add_get(f"{p}/vms", list_vms)
    app.router.add_post(f"{p}/vms", create_vm)
    app.router.add_get(f"{p}/vms/{{name}}", show_vm)
    app.router.add_patch(f"{p}/vms/{{name}}", patch_vm)
    app.router.add_delete(f"{p}/vms/{{name}}", delete_vm)
    app.router.add_post(f"{p}/vms/{{name}}/start", start_vm)
    app.router.add_post(f"{p}/vms/{{name}}/stop", stop_vm)
    app.router.add_post(f"{p}/vms/{{name}}/pause", simple(lifecycle.pause))
    app.router.add_post(f"{p}/vms/{{name}}/resume", simple(lifecycle.resume))
    app.router.add_post(f"{p}/vms/{{name}}/reset", simple(lifecycle.reset))
    app.router.add_get(f"{p}/vms/{{name}}/stats", stats_vm)
    app.router.add_post(f"{p}/vms/{{name}}/migrate", not_implemented("live migration"))
    app.router.add_post(f"{p}/vms/{{name}}/clone", not_implemented("cloning"))
    app.router.add_post(f"{p}/vms/{{name}}/attest", not_implemented("attestation"))
    app.router.add_get(f"{p}/vms/{{name}}/snapshots", not_implemented("snapshots"))
    app.router.add_post(f"{p}/vms/{{name}}/snapshots", not_implemented("snapshots"))
    app.router.add_post(f"{p}/vms/{{name}}/snapshots/{{snap}}/restore",
                        not_implemented("snapshots"))
    app.router.add_delete(f"{p}/vms/{{name}}/snapshots/{{snap}}", not_implemented("snapshots"))
    return app


class Supervisor:
    """Reaps the runner processes this daemon started and notices every runner that died
    (also those of a previous daemon, by pid and start time): their VMs become CRASHED."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()

    def adopt(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.children[f"{name}/{proc.pid}"] = proc

    def exit_detail(self, pid: int) -> str | None:
        """How a runner this daemon started ended (it is dead or dying: reap it)."""
        with self.lock:
            found = [(k, p) for k, p in self.children.items() if p.pid == pid]
        if not found:
            return None
        key, proc = found[0]
        try:
            code = proc.wait(2)
        except subprocess.TimeoutExpired:
            return None
        with self.lock:
            self.children.pop(key, None)
        how = lifecycle.how_it_ended(code)
        log("ERROR", "lifecycle", f"VM {key.rsplit('/', 1)[0]}: runner pid {pid} {how}")
        return how

    def sweep(self) -> None:
        self.sweep_children()
        for name in records.names():
            with contextlib.suppress(QVError, OSError):
                lifecycle.reconcile(name)

    def sweep_children(self) -> None:
        """Reap the runners this daemon started; a VM whose runner died gets the exact reason
        (signal or status). Runs before every request too, so no reader sees a bare crash."""
        with self.lock:
            ended = [(k, p, p.poll()) for k, p in self.children.items()]
            ended = [(k, p, c) for k, p, c in ended if c is not None]
            for key, _, _ in ended:
                del self.children[key]
        for key, proc, code in ended:
            assert code is not None
            name = key.rsplit("/", 1)[0]
            how = lifecycle.how_it_ended(code)
            with contextlib.suppress(QVError):
                rec = lifecycle.reconcile(name, detail=how)
                if rec.get("state") == "CRASHED":
                    log("ERROR", "lifecycle", f"VM {name}: runner pid {proc.pid} {how}")

    async def watch(self, interval: float = 0.5) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.sweep)
            except Exception as e:  # keep supervising whatever one sweep hit
                log("ERROR", "lifecycle", f"supervisor sweep failed: {e!r}")
            await asyncio.sleep(interval)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise QVError("QV_ERR_INVAL", f"--listen wants HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def _prepare_socket(path: Path) -> None:
    if len(str(path).encode()) > 107:
        raise QVError("QV_ERR_INVAL", f"socket path too long (max 107 bytes): {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise QVError("QV_ERR_EXIST", f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(path))
            except OSError:
                path.unlink()  # stale: no daemon answers
            else:
                raise QVError("QV_ERR_BUSY", f"a daemon already answers on {path}")


async def serve(socket_path: str, listen: str | None) -> None:
    set_level("INFO")
    token = ensure_token()
    sock = Path(socket_path)
    _prepare_socket(sock)
    supervisor = Supervisor()
    lifecycle.exit_detail_hook = supervisor.exit_detail
    app = make_app(token, supervisor)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    old_umask = os.umask(0o177)  # the socket is created 0600
    where = [str(sock)]
    try:
        await web.UnixSite(runner, str(sock)).start()
        if listen:
            host, port = parse_listen(listen)
            where.append(f"{host}:{port}")
            await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        with contextlib.suppress(OSError):
            sock.unlink()
        raise QVError("QV_ERR_BUSY", f"cannot listen on {where[-1]}: {e.strerror}") from None
    finally:
        os.umask(old_umask)
    log("INFO", SUBSYSTEM, f"serving {PREFIX} on {' and '.join(where)}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(supervisor.watch())
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        await runner.cleanup()
        with contextlib.suppress(OSError):
            sock.unlink()
        log("INFO", SUBSYSTEM, "stopped; VMs keep running in their own processes")
