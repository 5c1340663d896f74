"""What this host can do: KVM, CPU, hugepages, confidential computing, networking, QUAC 100.

`probe()` is the one place host facts are gathered; the config validator's host-dependent
rules, `quantavirt host info` and the engine's adaptations all read its HostInfo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class HugepagePool:
    size: str  # "2M" or "1G"
    total: int
    free: int


@dataclass(frozen=True)
class HostInfo:
    kvm_available: bool = False
    kvm_api_version: int | None = None
    # "hardware" (VMX/SVM), "emulating" (a backend that interprets guest code), or "none".
    kvm_backend: str = "none"
    kvm_capabilities: dict[str, int] = field(default_factory=dict)
    max_vcpus: int = 0
    recommended_vcpus: int = 0
    hugepages: dict[str, HugepagePool] = field(default_factory=dict)
    cpu_vendor: str = ""  # "GenuineIntel", "AuthenticAMD", ...
    cpu_flags: frozenset[str] = frozenset()
    cpu_models: tuple[str, ...] = ()  # the named CPU models this host can serve
    sev: bool = False
    sev_es: bool = False
    sev_snp: bool = False
    tdx: bool = False
    vhost_net: bool = False
    tun: bool = False
    quac100_devices: tuple[str, ...] = ()
    networks: frozenset[str] = frozenset()  # host network interfaces and bridges by name


def _host_networks() -> frozenset[str]:
    try:
        return frozenset(os.listdir("/sys/class/net"))
    except OSError:
        return frozenset()


def probe() -> HostInfo:
    """Gather the host's facts. (First cut: networks and device nodes only; KVM, CPU,
    hugepage and confidential-computing facts are filled in by the host-probe work.)"""
    return HostInfo(
        kvm_available=os.path.exists("/dev/kvm"),
        networks=_host_networks(),
        tun=Path("/dev/net/tun").exists(),
        vhost_net=Path("/dev/vhost-net").exists(),
        quac100_devices=tuple(sorted(str(p) for p in Path("/dev").glob("quac100_*"))),
    )
