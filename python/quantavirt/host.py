"""What this host can do: KVM, CPU, hugepages, confidential computing, networking, QUAC 100.

`probe()` is the one place host facts are gathered; the config validator's host-dependent
rules, `quantavirt host info` and the engine's adaptations all read its HostInfo. The KVM and
CPUID facts come from the C core (csrc/kvm/probe.c); the rest from sysfs and /dev.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from quantavirt._ffi import ffi, lib
from quantavirt.errors import QVError

if TYPE_CHECKING:
    from quantavirt.cpuid import CpuidEntry


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
    # True once cpu_models comes from KVM_GET_SUPPORTED_CPUID (then an empty tuple means "none
    # servable"); False leaves the models unknown (no usable KVM, or a hand-made HostInfo).
    cpu_models_known: bool = False
    # The flags KVM_GET_SUPPORTED_CPUID offers a guest (empty when unknown): what "+flag" needs.
    kvm_cpuid_flags: frozenset[str] = frozenset()
    sev: bool = False
    sev_es: bool = False
    sev_snp: bool = False
    tdx: bool = False
    vhost_net: bool = False
    tun: bool = False
    quac100_devices: tuple[str, ...] = ()
    networks: frozenset[str] = frozenset()  # host network interfaces and bridges by name
    # Added by the engine work:
    kvm_device: str = "/dev/kvm"
    kvm_error: str = ""           # why KVM is not usable ("" when it is)
    kvm_modules: tuple[str, ...] = ()  # loaded KVM modules (kvm_intel, kvm_amd, kvm_pvm, ...)
    host_memory: int = 0          # bytes (MemTotal)
    # Guest kernel command-line additions the engine applies on this backend (see
    # quantavirt.vm): empty on hardware KVM.
    guest_cmdline_adaptations: tuple[str, ...] = ()


# Linux 6.1 feature bit numbers (word * 32 + bit) of features the emulating backend cannot
# execute but cannot hide from the guest's CPUID either: PCLMULQDQ, SSSE3, CX16, SSE4.1,
# SSE4.2, POPCNT, AES, XSAVE, AVX, AVX2, AVX-512F, SMAP. `nopv`: the guest's CPUID also shows
# the outer hypervisor's KVM leaves (0x40000000..), and a guest that uses the PV IPI hypercall
# on this backend never delivers the IPI (measured: the first AP's call-function IPI to CPU 0
# hangs both CPUs at "x86: Booting SMP configuration"); without PV features it uses the LAPIC.
# `nosoftlockup`: at ~2 M instructions/s long boot-time work (the stock kernel's ftrace record
# check walks kallsyms for minutes) trips the soft-lockup watchdog, whose ~30-line reports on
# the emulated UART then cost more boot time; the lockups are the emulation's speed, not bugs.
# `cryptomgr.notests`: the crypto self-tests every algorithm runs when it registers take minutes
# here and trip the crypto manager's 60 s wait (measured: "Problem loading in-kernel X.509
# certificate (-110)" after 62 s of guest time); the same code is tested on hardware KVM.
EMULATING_BACKEND_CMDLINE = (
    "nopv",
    "noxsave",
    "nosoftlockup",
    "cryptomgr.notests",
    "clearcpuid=129,137,141,147,148,151,153,154,156,293,304,308",
)

_KVM_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm")


def _host_networks() -> frozenset[str]:
    try:
        return frozenset(os.listdir("/sys/class/net"))
    except OSError:
        return frozenset()


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _cpu_flags() -> frozenset[str]:
    """The kernel's feature names for the host CPU (what /proc/cpuinfo shows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _hugepages(root: Path = Path("/sys/kernel/mm/hugepages")) -> dict[str, HugepagePool]:
    pools: dict[str, HugepagePool] = {}
    names = {"hugepages-2048kB": "2M", "hugepages-1048576kB": "1G"}
    for d, size in names.items():
        total, free = _read(root / d / "nr_hugepages"), _read(root / d / "free_hugepages")
        if total.isdigit() and free.isdigit():
            pools[size] = HugepagePool(size, int(total), int(free))
    return pools


def _param_enabled(module: str, param: str) -> bool:
    return _read(f"/sys/module/{module}/parameters/{param}") in ("Y", "y", "1")


def _host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def kvm_backend(modules: tuple[str, ...], flags: frozenset[str]) -> str:
    """'hardware' when kvm_intel/kvm_amd drive VMX/SVM, 'emulating' when the loaded backend
    interprets guest code instead (kvm_pvm), 'none' without a backend module."""
    if ("kvm_intel" in modules and "vmx" in flags) or ("kvm_amd" in modules and "svm" in flags):
        return "hardware"
    if "kvm_pvm" in modules:
        return "emulating"
    return "none"


def probe_kvm(kvm_path: str | None = None) -> tuple[object | None, str]:
    """The C probe of the KVM device: (struct qv_kvm_probe, "") or (None, reason)."""
    out = ffi.new("struct qv_kvm_probe *")
    err = ffi.new("char[512]")
    rc = lib.qv_probe_kvm(ffi.NULL if kvm_path is None else kvm_path.encode(), out, err,
                          len(err))
    if rc != 0:
        return None, ffi.string(err).decode(errors="replace")
    return out, ""


def require_kvm(kvm_path: str | None = None) -> None:
    """Raise QV_ERR_NOVMX (with what to do) unless the KVM device is usable."""
    res, why = probe_kvm(kvm_path)
    if res is None:
        raise QVError("QV_ERR_NOVMX", why)


def offered_cpuid_flags(supported: list[CpuidEntry]) -> frozenset[str]:
    """The feature flags (by their Linux names) set in KVM's supported CPUID list."""
    from quantavirt.cpuid import feature_locations

    regs = ("eax", "ebx", "ecx", "edx")
    by_leaf: dict[tuple[int, int], CpuidEntry] = {}
    for e in supported:
        # Leaves without subleaves may come with any index; lookups use (leaf, 0) then.
        by_leaf.setdefault((e.function, e.index if e.flags & 1 else 0), e)
    out = set()
    for name, (fn, idx, reg, bit) in feature_locations().items():
        e = by_leaf.get((fn, idx))
        if e is not None and getattr(e, regs[reg]) >> bit & 1:
            out.add(name)
    return frozenset(out)


# Set by the engine on every vCPU itself, so never a reason to refuse a model.
_ENGINE_SET_FLAGS = frozenset({"hypervisor"})


def servable_cpu_models(offered: frozenset[str],
                        baselines: dict[str, frozenset[str]]) -> tuple[str, ...]:
    """The models (in table order) whose every baseline flag KVM offers on this host."""
    return tuple(name for name, flags in baselines.items()
                 if flags - _ENGINE_SET_FLAGS <= offered)


def _probe_kvm_cpuid(kvm_ok: bool) -> tuple[tuple[str, ...], frozenset[str] | None]:
    """(servable named models, the flags KVM offers) from KVM_GET_SUPPORTED_CPUID; None for
    the flags when KVM could not be asked."""
    if not kvm_ok:
        return (), None
    from quantavirt.cpuid import model_baselines, supported_cpuid

    try:
        supported = supported_cpuid()
    except QVError:
        return (), None
    offered = offered_cpuid_flags(supported)
    return servable_cpu_models(offered, model_baselines()), offered


def probe(kvm_path: str | None = None) -> HostInfo:
    """Gather the host's facts (never raises: an unusable KVM shows as kvm_error)."""
    from quantavirt.engine import kvm_device_path

    device = kvm_device_path(kvm_path)
    flags = _cpu_flags()
    modules = tuple(m for m in _KVM_MODULES if Path(f"/sys/module/{m}").exists())
    cpu = ffi.new("struct qv_cpu_probe *")
    lib.qv_probe_cpu(cpu)
    vendor = ffi.string(cpu.vendor).decode(errors="replace")
    res, why = probe_kvm(device)
    caps: dict[str, int] = {}
    if res is not None:
        for i in range(lib.QV_PROBE_CAP_COUNT):
            caps[ffi.string(lib.qv_probe_cap_name(i)).decode()] = int(res.caps[i])
    backend = kvm_backend(modules, flags) if res is not None else "none"
    # KVM_GET_SUPPORTED_CPUID is asked of /dev/kvm itself (the C query's fixed path).
    cpu_models, kvm_flags = _probe_kvm_cpuid(res is not None and device == "/dev/kvm")
    sev = _param_enabled("kvm_amd", "sev") or Path("/dev/sev").exists()
    # AMD memory encryption leaf 0x8000001f EAX: bit 1 SEV, 3 SEV-ES, 4 SEV-SNP.
    ext = int(cpu.ext1f_eax)
    return HostInfo(
        kvm_available=res is not None,
        kvm_api_version=int(res.api_version) if res is not None else None,
        kvm_backend=backend,
        kvm_capabilities=caps,
        max_vcpus=int(res.max_vcpus) if res is not None else 0,
        recommended_vcpus=int(res.nr_vcpus) if res is not None else 0,
        hugepages=_hugepages(),
        cpu_vendor=vendor,
        cpu_flags=flags,
        cpu_models=cpu_models,
        cpu_models_known=kvm_flags is not None,
        kvm_cpuid_flags=kvm_flags or frozenset(),
        sev=sev and bool(ext & 2),
        sev_es=_param_enabled("kvm_amd", "sev_es") and bool(ext & 8),
        sev_snp=_param_enabled("kvm_amd", "sev_snp") and bool(ext & 16),
        tdx=_param_enabled("kvm_intel", "tdx"),
        networks=_host_networks(),
        tun=Path("/dev/net/tun").exists(),
        vhost_net=Path("/dev/vhost-net").exists(),
        quac100_devices=tuple(sorted(str(p) for p in Path("/dev").glob("quac100_*"))),
        kvm_device=device,
        kvm_error=why,
        kvm_modules=modules,
        host_memory=_host_memory(),
        guest_cmdline_adaptations=EMULATING_BACKEND_CMDLINE if backend == "emulating" else (),
    )
