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
from quantavirt.config.model import VM

MAC_PREFIX = "52:54:00"


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
    eff = {f.name: eff[f.name] for f in VM.fields if f.name in eff}  # schema key order

    cpu = eff["cpu"]
    topology = resolve_topology(cpu["count"], cpu.get("topology"))
    assert not isinstance(topology, str), topology  # validation rejected it otherwise
    sockets, cores, threads = topology
    cpu_order = [f.name for f in VM.node_at(("cpu",)).fields]  # type: ignore[attr-defined]
    cpu["topology"] = {"sockets": sockets, "cores": cores, "threads": threads}
    if "pin" in cpu:
        cpu["pin"] = {k: cpu["pin"][k] for k in sorted(cpu["pin"], key=int)}
    eff["cpu"] = {k: cpu[k] for k in cpu_order if k in cpu}

    memory = eff["memory"]
    memory.setdefault("max_size", memory["size"])
    mem_order = [f.name for f in VM.node_at(("memory",)).fields]  # type: ignore[attr-defined]
    eff["memory"] = {k: memory[k] for k in mem_order if k in memory}

    disk_defaults = eff["pqc"]["storage_encryption"]
    disk_order = [f.name for f in VM.node_at(("storage",)).items.fields]  # type: ignore
    for i, disk in enumerate(eff["storage"]):
        if disk["media"] == "cdrom":
            disk["readonly"] = True
        if disk.get("format") == "encrypted":
            given = checked["storage"][i].get("encrypted", {})
            disk["encrypted"] = {"kem": given.get("kem", disk_defaults["kem"]),
                                 "aead": given.get("aead", disk_defaults["aead"])}
        eff["storage"][i] = {k: disk[k] for k in disk_order if k in disk}

    nic_order = [f.name for f in VM.node_at(("network",)).items.fields]  # type: ignore
    taken = {nic["mac"].lower() for nic in eff["network"] if "mac" in nic}
    for i, nic in enumerate(eff["network"]):
        if "mac" in nic:
            nic["mac"] = nic["mac"].lower()
        else:
            nic["mac"] = derived_mac(eff["uuid"], i, taken)
            taken.add(nic["mac"])
        eff["network"][i] = {k: nic[k] for k in nic_order if k in nic}

    for usb in eff["usb"]:
        for key in ("vendor_id", "product_id"):
            usb[key] = usb[key].lower()
    return eff
