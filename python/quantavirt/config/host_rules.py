"""Rules that depend on this host and its state directory, not on the config alone.

They read a :class:`quantavirt.host.HostInfo` (the real probe, or one a caller passes) and
``$QUANTAVIRT_HOME``. A host fact the probe left empty (no CPU models, no hugepage pools, no
CPU flags) means "unknown" and is not held against the config.

Deliberately not checked here (the engine checks them when the VM starts, since they can
change between validation and start): free hugepages, pCPU indexes in cpu.pin, NUMA nodes,
vhost-user sockets (a client's server may not be up yet), KVM itself.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from quantavirt import state
from quantavirt.config.fields import INVALID, Problems, show
from quantavirt.host import HostInfo


def _get(doc: Any, *keys: str) -> Any:
    """The checked value at keys, or None when absent or invalid."""
    for key in keys:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return None if doc is INVALID else doc


def _items(doc: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    items = _get(doc, key)
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _check_disk(path: str, where: tuple[str | int, ...], what: str, out: Problems) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        out.add("QV_ERR_NOENT", where, f"{what} not found: {path}", "host-path")
        return
    except ValueError:  # a lone surrogate cannot name a file
        out.inval(where, f"{what} path {show(path)} cannot be encoded as a file name",
                  "host-path")
        return
    except OSError as err:
        out.add("QV_ERR_NOENT", where, f"{what} not accessible: {path}: {err.strerror}",
                "host-path")
        return
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        out.inval(where, f"{path} is not a regular file or block device", "host-path")


def network_exists(name: str, host: HostInfo) -> bool:
    """A network is a host interface/bridge or one defined in $QUANTAVIRT_HOME/networks/."""
    return name in host.networks or state.network_file(name).is_file()


def check_host_rules(doc: Any, host: HostInfo, *, allow_existing: bool, out: Problems) -> None:
    if not isinstance(doc, dict):
        return
    name = _get(doc, "name")
    if name is not None and not allow_existing and state.vm_dir(name).exists():
        out.add("QV_ERR_EXIST", ("name",), f"VM name already in use: {name}", "host-name")

    _cpu(doc, host, out)
    _memory(doc, host, out)
    for i, disk in _items(doc, "storage"):
        path = _get(disk, "path")
        if path is not None:
            what = "cdrom image" if _get(disk, "media") == "cdrom" else "disk image"
            _check_disk(path, ("storage", i, "path"), what, out)
    for i, nic in _items(doc, "network"):
        net = _get(nic, "network")
        if net is not None and not network_exists(net, host):
            out.add("QV_ERR_NOENT", ("network", i, "network"), f"network '{net}' not found",
                    "host-network")
    for key in ("kernel", "initrd"):
        path = _get(doc, "boot", key)
        if path is not None:
            _check_disk(path, ("boot", key), f"boot {key}", out)
    log = _get(doc, "console", "log")
    if log is not None and not Path(log).parent.is_dir():
        out.add("QV_ERR_NOENT", ("console", "log"),
                f"directory of the console log not found: {show(str(Path(log).parent))}",
                "host-path")
    _security(doc, host, out)
    if _get(doc, "pqc", "enabled") and _get(doc, "pqc", "backend") == "quac100" \
            and not host.quac100_devices:
        out.add("QV_ERR_NODEV", ("pqc", "backend"), "no QUAC 100 card on this host "
                '(use backend "auto" or "software")', "host-quac100")


def _cpu(doc: dict[str, Any], host: HostInfo, out: Problems) -> None:
    count = _get(doc, "cpu", "count")
    if count is not None and host.max_vcpus and count > host.max_vcpus:
        out.add("QV_ERR_NODEV", ("cpu", "count"),
                f"{count} vCPUs exceed this host's KVM limit of {host.max_vcpus}", "host-cpu")
    model = _get(doc, "cpu", "model")
    models_known = host.cpu_models_known or bool(host.cpu_models)
    if model not in (None, "host") and models_known and model not in host.cpu_models:
        served = ", ".join(host.cpu_models) or "none"
        out.add("QV_ERR_NODEV", ("cpu", "model"),
                f"CPU model {model} is not available on this host (KVM offers the baseline of: "
                f"{served}; \"host\" always works)", "host-cpu")
    features = _get(doc, "cpu", "features") or []
    # What KVM offers a guest decides (the engine checks the same list at start); the host
    # CPU's own flags only when KVM could not be asked.
    offered, source = ((host.kvm_cpuid_flags, "KVM on this host does not offer")
                       if host.kvm_cpuid_flags else (host.cpu_flags, "this host's CPU lacks"))
    if offered:
        for i, item in enumerate(features):
            if item is not INVALID and item[0] == "+" and item[1:] not in offered:
                out.add("QV_ERR_NODEV", ("cpu", "features", i), f"{source} {item[1:]}",
                        "host-cpu")


def _memory(doc: dict[str, Any], host: HostInfo, out: Problems) -> None:
    hugepages = _get(doc, "memory", "hugepages")
    if hugepages and host.hugepages and hugepages not in host.hugepages:
        out.add("QV_ERR_NODEV", ("memory", "hugepages"),
                f"this host has no {hugepages} hugepage pool", "host-hugepages")


def _security(doc: dict[str, Any], host: HostInfo, out: Problems) -> None:
    if _get(doc, "security", "sev", "enabled") is True:
        if not host.sev:
            out.add("QV_ERR_NODEV", ("security", "sev"), "AMD SEV not available on this host",
                    "host-sev")
        if _get(doc, "security", "sev", "es") is True and not host.sev_es:
            out.add("QV_ERR_NODEV", ("security", "sev", "es"),
                    "AMD SEV-ES not available on this host", "host-sev")
        if _get(doc, "security", "sev", "snp") is True and not host.sev_snp:
            out.add("QV_ERR_NODEV", ("security", "sev", "snp"),
                    "AMD SEV-SNP not available on this host", "host-sev")
    if _get(doc, "security", "tdx", "enabled") is True and not host.tdx:
        out.add("QV_ERR_NODEV", ("security", "tdx"), "Intel TDX not available on this host",
                "host-tdx")
