"""Named vCPU models and the x86 CPUID feature flags the configuration may name.

Flag names are the Linux ``/proc/cpuinfo`` spellings (``sha_ni``, ``avx512_vnni``), so a
host's flags, a model's baseline and a config's ``"+flag"`` overrides compare directly. Each
model lists every CPUID feature its baseline exposes; the engine masks guest CPUID to that
list (plus overrides), so a guest sees the same CPU on every host that can serve the model.
The baselines come from the engine's table in C, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

INTEL = "GenuineIntel"
AMD = "AuthenticAMD"

# Every CPUID feature flag (leaves 0x1, 0x6, 0x7, 0xD, 0x80000001, 0x80000007/8, 0x8000001F,
# 0x14, 0x19) a config may switch on or off, by its Linux name.
_LINUX_CPUID_FLAGS: frozenset[str] = frozenset(
    """
    fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 pn clflush dts
    acpi mmx fxsr sse sse2 ss ht tm ia64 pbe
    pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 cid sdbg fma cx16 xtpr pdcm pcid
    dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave osxsave avx f16c rdrand
    hypervisor
    syscall mp nx mmxext fxsr_opt pdpe1gb rdtscp lm 3dnowext 3dnow
    lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs xop
    skinit wdt lwp fma4 tce nodeid_msr tbm topoext perfctr_core perfctr_nb bpext ptsc
    perfctr_llc mwaitx
    fsgsbase tsc_adjust sgx bmi1 hle avx2 fdp_excptn_only smep bmi2 erms invpcid rtm pqm mpx
    rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb intel_pt avx512pf
    avx512er avx512cd sha_ni avx512bw avx512vl
    avx512vbmi umip pku ospke waitpkg avx512_vbmi2 cet_ss gfni vaes vpclmulqdq avx512_vnni
    avx512_bitalg tme avx512_vpopcntdq la57 rdpid bus_lock_detect cldemote movdiri movdir64b
    enqcmd sgx_lc
    avx512_4vnniw avx512_4fmaps fsrm avx512_vp2intersect srbds_ctrl md_clear serialize hybrid
    tsxldtrk pconfig arch_lbr ibt amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d
    arch_capabilities core_capabilities spec_ctrl_ssbd
    avx_vnni avx512_bf16 cmpccxadd arch_perfmon_ext fzrm fsrs fsrc lkgs amx_fp16 avx_ifma
    xsaveopt xsavec xgetbv1 xsaves xfd
    dtherm ida arat pln pts hwp hwp_notify hwp_act_window hwp_epp hwp_pkg_req
    clzero irperf xsaveerptr rdpru wbnoinvd amd_ppin amd_ssbd virt_ssbd amd_ssb_no
    ibpb ibrs stibp ibrs_enhanced amd_stibp amd_ibpb amd_ibrs
    npt lbrv svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter
    pfthreshold avic v_vmsave_vmload vgif x2avic v_spec_ctrl vnmi
    sme sev sev_es sev_snp vm_page_flush
    overflow_recov succor smca
    invtsc constant_tsc nonstop_tsc
    """.split()
)


def _known_flags() -> frozenset[str]:
    from quantavirt.cpuid import feature_names

    return _LINUX_CPUID_FLAGS | frozenset(feature_names())


# ... plus every flag the engine can mask (its table names a few the kernel hides).
KNOWN_CPUID_FLAGS: frozenset[str] = _known_flags()

@dataclass(frozen=True)
class CpuModel:
    name: str
    vendor: str  # the CPUID vendor string the guest sees
    baseline: str  # the product generation the model stands for
    features: frozenset[str]  # CPUID feature flags exposed to the guest


# Vendor and generation of each model, in the schema's order. The feature baselines are the
# engine's own table (csrc/cpuid/features.c), the one guest CPUID is masked with.
_MODEL_FACTS = (
    ("Skylake-Server", INTEL, "Xeon Scalable 1st Gen"),
    ("Cascadelake-Server", INTEL, "Xeon Scalable 2nd Gen"),
    ("Icelake-Server", INTEL, "Xeon Scalable 3rd Gen"),
    ("SapphireRapids", INTEL, "Xeon Scalable 4th Gen"),
    ("EPYC", AMD, "AMD EPYC 7001"),
    ("EPYC-Rome", AMD, "AMD EPYC 7002"),
    ("EPYC-Milan", AMD, "AMD EPYC 7003"),
    ("EPYC-Genoa", AMD, "AMD EPYC 9004"),
)


def _models() -> dict[str, CpuModel]:
    from quantavirt.cpuid import model_baselines

    baselines = model_baselines()
    if set(baselines) != {name for name, _, _ in _MODEL_FACTS}:
        raise RuntimeError("the engine's CPU model table and the schema's model list differ")
    return {name: CpuModel(name, vendor, generation, baselines[name])
            for name, vendor, generation in _MODEL_FACTS}


CPU_MODELS: dict[str, CpuModel] = _models()

HOST_MODEL = "host"
MODEL_NAMES: tuple[str, ...] = (HOST_MODEL, *CPU_MODELS)


def guest_features(model: str, overrides: list[str]) -> frozenset[str]:
    """The CPUID flags a guest of a named model sees after "+flag"/"-flag" overrides."""
    flags = set(CPU_MODELS[model].features)
    for item in overrides:
        (flags.add if item[0] == "+" else flags.discard)(item[1:])
    return frozenset(flags)
