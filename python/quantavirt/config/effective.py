"""The effective configuration: a valid config with every default made explicit.

Keys follow the schema's order; sizes are canonical ("1024M" -> "1G"); the uuid is generated
when absent and NIC MACs are derived from uuid + NIC index, so validating the effective
config again returns it unchanged.
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from typing import Any

from quantavirt.config.cross_rules import resolve_topology
from quantavirt.config.fields import Arr, Obj
from quantavirt.config.model import VM

MAC_PREFIX = "52:54:00"


def _ordered(value: dict[str, Any], *path: str) -> dict[str, Any]:
    """``value`` with its keys in the schema's order for the object (or array items) at path."""
    node = VM.node_at(path)
    if isinstance(node, Arr):
        node = node.items
    assert isinstance(node, Obj)
    return {f.name: value[f.name] for f in node.fields if f.name in value}


def derived_mac(vm_uuid: str, index: int, taken: set[str]) -> str:
    """A locally administered unicast MAC under 52:54:00, stable for (uuid, index) and
    different from every MAC in ``taken``."""
    salt = 0
    while True:
        digest = hashlib.sha256(f"{vm_uuid}/{index}/{salt}".encode()).digest()
        mac = MAC_PREFIX + "".join(f":{b:02x}" for b in digest[:3])
        if mac not in taken:
            return mac
        salt += 1


def build_effective(checked: dict[str, Any]) -> dict[str, Any]:
    """``checked`` is a config that passed validation (absent fields still absent)."""
    eff: dict[str, Any] = VM.effective(checked)
    eff["uuid"] = (eff.get("uuid") or str(uuidlib.uuid4())).lower()
    eff = _ordered(eff)

    cpu = eff["cpu"]
    topology = resolve_topology(cpu["count"], cpu.get("topology"))
    assert not isinstance(topology, str), topology  # validation rejected it otherwise
    sockets, cores, threads = topology
    cpu["topology"] = {"sockets": sockets, "cores": cores, "threads": threads}
    if "pin" in cpu:
        cpu["pin"] = {k: cpu["pin"][k] for k in sorted(cpu["pin"], key=int)}
    eff["cpu"] = _ordered(cpu, "cpu")

    memory = eff["memory"]
    memory.setdefault("max_size", memory["size"])
    eff["memory"] = _ordered(memory, "memory")

    disk_defaults = eff["pqc"]["storage_encryption"]
    for i, disk in enumerate(eff["storage"]):
        if disk["media"] == "cdrom":
            disk["readonly"] = True
        if disk.get("format") == "encrypted":
            given = checked["storage"][i].get("encrypted", {})
            disk["encrypted"] = {"kem": given.get("kem", disk_defaults["kem"]),
                                 "aead": given.get("aead", disk_defaults["aead"])}
        eff["storage"][i] = _ordered(disk, "storage")

    taken = {nic["mac"].lower() for nic in eff["network"] if "mac" in nic}
    for i, nic in enumerate(eff["network"]):
        if "mac" in nic:
            nic["mac"] = nic["mac"].lower()
        else:
            nic["mac"] = derived_mac(eff["uuid"], i, taken)
            taken.add(nic["mac"])
        eff["network"][i] = _ordered(nic, "network")

    for usb in eff["usb"]:
        for key in ("vendor_id", "product_id"):
            usb[key] = usb[key].lower()
    return eff
