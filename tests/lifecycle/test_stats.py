"""`GET /vms/{name}/stats` and `quantavirt vm stats` on a running VM that does disk I/O: the
freestanding virtio-blk guest of tests/pci/guest in its endless-write mode (4 KiB writes, a
flush after every 8), booted through the runner's test hook. The counters come from the
engine's virtio-blk device and must grow while the guest runs, and agree with what the guest
really wrote to the image."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from quantavirt import storage
from quantavirt.errors import QVError
from quantavirt.runner import control_request

from .conftest import Api, Daemon, Guest, needs_kvm

CRASH_MODE = 2          # virtio_blk_guest.c: endless writes, flush after every 8
WRITE_SIZE = 4096
FIRST_SECTOR = 16


def json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema (``nullable`` becomes a "null" type)."""
    if isinstance(node, list):
        return [json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@needs_kvm
def test_disk_counters_grow_while_the_guest_writes(
        api: Api, make_config: Callable[..., dict[str, Any]], test_guests_dir: Path,
        tmp_path: Path, virtio_blk_guest: bytes) -> None:
    (test_guests_dir / "io.bin").write_bytes(virtio_blk_guest)
    (test_guests_dir / "io.params").write_bytes(CRASH_MODE.to_bytes(4, "little"))
    image = tmp_path / "io.raw"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    cfg = make_config("io", storage=[{"path": str(image), "format": "raw",
                                         "discard": True}])  # the guest wants it
    assert api.request("POST", "/vms", cfg).status == 201
    r = api.request("POST", "/vms/io/start")
    assert r.status == 200, r.body

    def stats() -> dict[str, Any]:
        reply = api.request("GET", "/vms/io/stats")
        assert reply.status == 200, reply.body
        return reply.body  # type: ignore[no-any-return]

    first = wait_for(lambda: (s := stats())["disk"]["write_ops"] >= 8 and s, "the first writes")
    time.sleep(1.0)
    second = stats()
    d1, d2 = first["disk"], second["disk"]
    assert d2["write_ops"] > d1["write_ops"] and d2["flush_ops"] > d1["flush_ops"]
    for d in (d1, d2):
        # every request of this guest is one 4 KiB write; a flush after every 8 writes
        assert d["write_bytes"] == WRITE_SIZE * d["write_ops"]
        assert d["write_ops"] // 8 - 1 <= d["flush_ops"] <= d["write_ops"] // 8 + 1
        assert d["read_ops"] == d["read_bytes"] == 0 and d["io_errors"] == 0
        [dev] = d["devices"]
        assert dev["storage"] == 0 and dev["path"] == str(image) and not dev["readonly"]
        assert dev["write_ops"] == d["write_ops"] and dev["write_bytes"] == d["write_bytes"]
    # The rest: the guest's PCI set-up exited on 0xcf8/0xcfc; its requests then go through
    # ioeventfd kicks and MSI-X without exits to the VMM, while its vCPU keeps burning CPU.
    assert second["exits"]["by_reason"].get("io", 0) >= 20
    assert second["exits"]["total"] >= first["exits"]["total"]
    assert second["vcpus"][0]["cpu_seconds"] > first["vcpus"][0]["cpu_seconds"]
    assert second["process"]["rss_bytes"] > 1 << 20
    assert second["network"]["rx_bytes"] == 0 and "virtio-net" in second["network"]["note"]
    assert second["acpi"]["power_button"] == {"presses": 0, "enabled": False,
                                              "pending": False}

    # The answer follows the OpenAPI document's Stats schema.
    schema = api.request("GET", "/openapi.json").body["components"]["schemas"]["Stats"]
    jsonschema.validate(second, json_schema(schema))

    # The CLI reads the same counters through the daemon (--json and text).
    env = dict(api.daemon.env, QUANTAVIRT_API_SOCKET=str(api.daemon.socket))
    out = subprocess.run([sys.executable, "-m", "quantavirt", "vm", "stats", "io", "--json"],
                         env=env, capture_output=True, text=True, check=True).stdout
    third = json.loads(out)
    assert third["disk"]["write_ops"] >= second["disk"]["write_ops"]
    text = subprocess.run([sys.executable, "-m", "quantavirt", "vm", "stats", "io"], env=env,
                          capture_output=True, text=True, check=True).stdout
    assert f"storage[0] {image}:" in text and "B written in" in text, text

    r = api.request("POST", "/vms/io/stop", {"force": True})
    assert r.status == 200 and r.body["state"] == "STOPPED"
    # Once the stop has answered, the VM process has released the image and its write lock.
    with storage.open_disk(image, "raw") as disk:
        assert disk.size == 16 << 20
    # The host sees what the guest wrote: write i went to sector 16 + (i % 1024) * 8 and
    # starts with i; every write the device counted is in the image (fewer than 1024 here).
    written = third["disk"]["write_ops"]
    assert written < 1024
    data = image.read_bytes()
    for i in (0, written // 2, written - 1):
        off = (FIRST_SECTOR + i * 8) * 512
        assert int.from_bytes(data[off:off + 4], "little") == i
        assert data[off + 4:off + 8] == bytes((i * 31 + b) & 0xFF for b in range(4, 8))


@needs_kvm
def test_balloon_control_op_and_stats(daemon: Daemon,
                                      make_config: Callable[..., dict[str, Any]],
                                      guest: Callable[[str], Guest],
                                      test_guests_dir: Path) -> None:
    """The runner's balloon op (no REST endpoint: the product lists none) on a VM with
    memory.balloon, and its absence without; the stats carry the balloon's state."""
    api = Api(daemon, "unix")
    for name, balloon in (("bal", True), ("plain", False)):
        shutil.copy(guest("count").path, test_guests_dir / f"{name}.bin")
        cfg = make_config(name, memory={"size": "128M", "balloon": balloon})
        assert api.request("POST", "/vms", cfg).status == 201
        assert api.request("POST", f"/vms/{name}/start").status == 200
    with pytest.raises(QVError) as e:
        control_request("plain", {"op": "balloon", "target_bytes": 1 << 20})
    assert e.value.name == "QV_ERR_NODEV"
    assert api.request("GET", "/vms/plain/stats").body["balloon"] is None
    reply = control_request("bal", {"op": "balloon"})
    assert reply["balloon"]["actual_bytes"] == 0   # this guest has no balloon driver
    for bad in (-1, "1G", True, 256 << 20):
        with pytest.raises(QVError) as e:
            control_request("bal", {"op": "balloon", "target_bytes": bad})
        assert e.value.name == "QV_ERR_INVAL", bad
    reply = control_request("bal", {"op": "balloon", "target_bytes": 32 << 20})
    assert reply["ok"] and reply["balloon"]["actual_bytes"] == 0
    st = api.request("GET", "/vms/bal/stats").body
    assert st["balloon"]["actual_bytes"] == 0 and "inflated_pages" in st["balloon"]
    for name in ("bal", "plain"):
        assert api.request("POST", f"/vms/{name}/stop", {"force": True}).status == 200
