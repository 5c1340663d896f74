"""Guest CPUID from Python: KVM's supported list, named models, topology (csrc/cpuid/)."""

from __future__ import annotations

from dataclasses import dataclass

from quantavirt._ffi import ffi, lib
from quantavirt.boot import raise_for

__all__ = ["CpuidEntry", "apic_id", "build_cpuid", "feature_locations", "feature_names",
           "model_baselines", "model_names", "supported_cpuid"]

_ERRLEN = 512


@dataclass(frozen=True)
class CpuidEntry:
    function: int
    index: int
    flags: int
    eax: int
    ebx: int
    ecx: int
    edx: int


def _from_c(e: object) -> CpuidEntry:
    return CpuidEntry(*(int(getattr(e, f)) for f in CpuidEntry.__dataclass_fields__))


def supported_cpuid() -> list[CpuidEntry]:
    """KVM_GET_SUPPORTED_CPUID (needs /dev/kvm; QV_ERR_NOVMX without it)."""
    out = ffi.new("struct qv_cpuid_entry[]", lib.QV_CPUID_MAX_ENTRIES)
    err = ffi.new("char[]", _ERRLEN)
    n = lib.qv_cpuid_query_supported(out, lib.QV_CPUID_MAX_ENTRIES, err, _ERRLEN)
    raise_for(n, err)
    return [_from_c(out[i]) for i in range(n)]


def model_names() -> list[str]:
    return [ffi.string(lib.qv_cpuid_model_name(i)).decode()
            for i in range(lib.qv_cpuid_model_count())]


def feature_names() -> list[str]:
    names = []
    name = ffi.new("const char **")
    fn, idx, reg, bit = (ffi.new("uint32_t *") for _ in range(4))
    for i in range(lib.qv_cpuid_feature_count()):
        lib.qv_cpuid_feature_at(i, name, fn, idx, reg, bit)
        names.append(ffi.string(name[0]).decode())
    return names


def model_baselines() -> dict[str, frozenset[str]]:
    """Each named model's baseline flags, from the one table the engine masks guest CPUID
    with (csrc/cpuid/features.c), in the schema's order."""
    names = feature_names()
    return {m: frozenset(f for f in names if lib.qv_cpuid_model_has(m.encode(), f.encode()) == 1)
            for m in model_names()}


def feature_locations() -> dict[str, tuple[int, int, int, int]]:
    """Each known flag's (leaf, subleaf, register 0-3 = eax..edx, bit)."""
    out = {}
    name = ffi.new("const char **")
    fn, idx, reg, bit = (ffi.new("uint32_t *") for _ in range(4))
    for i in range(lib.qv_cpuid_feature_count()):
        lib.qv_cpuid_feature_at(i, name, fn, idx, reg, bit)
        out[ffi.string(name[0]).decode()] = (int(fn[0]), int(idx[0]), int(reg[0]), int(bit[0]))
    return out


def apic_id(sockets: int, cores: int, threads: int, index: int) -> int:
    topo = ffi.new("struct qv_cpu_topology *", [sockets, cores, threads])
    return int(lib.qv_cpuid_apic_id(topo, index))


def build_cpuid(supported: list[CpuidEntry], vcpu_index: int, *, model: str = "host",
                features: list[str] | tuple[str, ...] = (), sockets: int = 1, cores: int = 1,
                threads: int = 1, strict: bool = False) -> list[CpuidEntry]:
    """The KVM_SET_CPUID2 entries for one vCPU."""
    sup = ffi.new("struct qv_cpuid_entry[]", max(len(supported), 1))
    for i, e in enumerate(supported):
        sup[i] = [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx]
    keep = [ffi.new("char[]", f.encode()) for f in features]
    feats = ffi.new("const char *[]", keep) if keep else ffi.NULL
    model_c = ffi.new("char[]", model.encode())
    cfg = ffi.new("struct qv_cpuid_config *")
    cfg.model = model_c
    cfg.features = feats
    cfg.n_features = len(keep)
    cfg.topology = [sockets, cores, threads]
    cfg.strict = int(strict)
    cap = len(supported) + 8
    out = ffi.new("struct qv_cpuid_entry[]", cap)
    err = ffi.new("char[]", _ERRLEN)
    n = lib.qv_cpuid_build(sup, len(supported), cfg, vcpu_index, out, cap, err, _ERRLEN)
    raise_for(n, err)
    return [_from_c(out[i]) for i in range(n)]
