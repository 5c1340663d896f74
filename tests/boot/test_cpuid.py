"""Guest CPUID from KVM's real supported list (and a synthetic Intel one, since the topology
leaves differ by vendor): topology fields, model masking, +flag/-flag overrides."""

from __future__ import annotations

import os
import struct

import pytest

from quantavirt import cpuid
from quantavirt.cpuid import CpuidEntry
from quantavirt.errors import QVError

needs_kvm = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                               reason="needs /dev/kvm")


def find(entries: list[CpuidEntry], fn: int, idx: int = 0) -> CpuidEntry:
    for e in entries:
        if e.function == fn and (not e.flags & 1 or e.index == idx):
            return e
    raise KeyError(hex(fn))


def has(entries: list[CpuidEntry], fn: int, idx: int = 0) -> bool:
    try:
        find(entries, fn, idx)
    except KeyError:
        return False
    return True


def flag_locations() -> dict[str, tuple[int, int, int, int]]:
    from quantavirt._ffi import ffi, lib
    name = ffi.new("const char **")
    fn, idx, reg, bit = (ffi.new("uint32_t *") for _ in range(4))
    out = {}
    for i in range(lib.qv_cpuid_feature_count()):
        assert lib.qv_cpuid_feature_at(i, name, fn, idx, reg, bit) == 0
        out[ffi.string(name[0]).decode()] = (fn[0], idx[0], reg[0], bit[0])
    return out


FLAGS = flag_locations()


def flag_set(entries: list[CpuidEntry], flag: str) -> bool:
    fn, idx, reg, bit = FLAGS[flag]
    if not has(entries, fn, idx):
        return False
    e = find(entries, fn, idx)
    return bool((e.eax, e.ebx, e.ecx, e.edx)[reg] >> bit & 1)


@pytest.fixture(scope="module")
def supported() -> list[CpuidEntry]:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("needs /dev/kvm")
    entries = cpuid.supported_cpuid()
    assert len(entries) > 10
    return entries


def vendor(entries: list[CpuidEntry]) -> str:
    e = find(entries, 0)
    return struct.pack("<III", e.ebx, e.edx, e.ecx).decode()


def intel_supported() -> list[CpuidEntry]:
    """A trimmed Intel (Icelake-like) supported list with deterministic cache leaves."""
    e = CpuidEntry
    ebx, edx, ecx = struct.unpack("<III", b"GenuineIntel")
    return [
        e(0x0, 0, 0, 0x1F, ebx, ecx, edx),
        e(0x1, 0, 0, 0x606A6, 0x800, 0xF7FA3223, 0x0F8BFBFF),
        e(0x4, 0, 1, 0x121, 0x1C0003F, 0x3F, 0),      # L1d
        e(0x4, 1, 1, 0x122, 0x1C0003F, 0x3F, 0),      # L1i
        e(0x4, 2, 1, 0x143, 0x4C0003F, 0x3FF, 0),     # L2
        e(0x4, 3, 1, 0x163, 0x2C0003F, 0xBFFF, 4),    # L3
        e(0x4, 4, 1, 0, 0, 0, 0),
        e(0x7, 0, 1, 0, 0xF3BFA7EB, 0x18405F4E, 0xBC000410),
        e(0xB, 0, 1, 1, 2, 0x100, 0),
        e(0xB, 1, 1, 6, 64, 0x201, 0),
        e(0xD, 0, 1, 0x2E7, 0xA88, 0xA88, 0),
        e(0xD, 1, 1, 0xF, 0, 0, 0),
        e(0x1F, 0, 1, 1, 2, 0x100, 0),
        e(0x80000000, 0, 0, 0x80000008, 0, 0, 0),
        e(0x80000001, 0, 0, 0, 0, 0x121, 0x2C100800),
        e(0x80000008, 0, 0, 0x3030, 0x200, 0, 0),
    ]


@needs_kvm
@pytest.mark.parametrize(("sockets", "cores", "threads"), [(1, 1, 1), (1, 4, 2), (2, 3, 2),
                                                           (1, 2, 1)])
def test_topology_is_consistent(supported: list[CpuidEntry], sockets: int, cores: int,
                                threads: int) -> None:
    total = sockets * cores * threads
    smt_bits = (threads - 1).bit_length()
    core_bits = (cores - 1).bit_length()
    amd = vendor(supported) in ("AuthenticAMD", "HygonGenuine")
    ids = []
    for i in range(total):
        out = cpuid.build_cpuid(supported, i, sockets=sockets, cores=cores, threads=threads)
        apic = cpuid.apic_id(sockets, cores, threads, i)
        ids.append(apic)
        thread, core, socket = i % threads, (i // threads) % cores, i // (threads * cores)
        assert apic == (socket << (smt_bits + core_bits)) | (core << smt_bits) | thread
        l1 = find(out, 1)
        assert l1.ebx >> 24 == apic
        assert (l1.ebx >> 16) & 0xFF == 1 << (smt_bits + core_bits)
        assert bool(l1.edx >> 28 & 1) == (cores * threads > 1)  # HTT
        assert l1.ecx >> 31 & 1  # hypervisor
        for leaf in (0xB, 0x1F):
            if not has(supported, leaf):
                continue
            smt, core_lvl, end = (find(out, leaf, n) for n in range(3))
            assert (smt.eax & 0x1F, smt.ebx & 0xFFFF, (smt.ecx >> 8) & 0xFF) == (
                smt_bits, threads, 1)
            assert (core_lvl.eax & 0x1F, core_lvl.ebx & 0xFFFF, (core_lvl.ecx >> 8) & 0xFF) == (
                smt_bits + core_bits, threads * cores, 2)
            assert (end.ecx >> 8) & 0xFF == 0 and end.ebx == 0
            assert smt.edx == core_lvl.edx == end.edx == apic
        if amd and has(supported, 0x8000001E):
            t = find(out, 0x8000001E)
            assert t.eax == apic
            assert t.ebx & 0xFF == core and (t.ebx >> 8) & 0xFF == threads - 1
            assert t.ecx & 0xFF == socket
        if amd:
            x8 = find(out, 0x80000008)
            assert x8.ecx & 0xFF == cores * threads - 1
            assert (x8.ecx >> 12) & 0xF == smt_bits + core_bits
            assert bool(find(out, 0x80000001).ecx >> 1 & 1) == (cores * threads > 1)
    assert len(set(ids)) == total


@needs_kvm
def test_host_model_passes_features_through(supported: list[CpuidEntry]) -> None:
    out = cpuid.build_cpuid(supported, 0)
    for flag in FLAGS:
        if flag in ("hypervisor", "ht", "cmp_legacy"):
            continue
        assert flag_set(out, flag) == flag_set(supported, flag), flag
    assert flag_set(out, "hypervisor")
    # Leaves other than the topology ones are untouched.
    for e in supported:
        if e.function in (0x1, 0x4, 0xB, 0x1F, 0x80000001, 0x80000008, 0x8000001D, 0x8000001E):
            continue
        got = find(out, e.function, e.index)
        assert (got.eax, got.ebx, got.ecx, got.edx) == (e.eax, e.ebx, e.ecx, e.edx)


@needs_kvm
@pytest.mark.parametrize("model", cpuid.model_names())
def test_named_models_mask_to_baseline(supported: list[CpuidEntry], model: str) -> None:
    from quantavirt._ffi import lib
    out = cpuid.build_cpuid(supported, 0, model=model)
    for flag in FLAGS:
        in_model = lib.qv_cpuid_model_has(model.encode(), flag.encode()) == 1
        if flag in ("ht", "cmp_legacy"):
            continue
        if flag == "hypervisor":
            assert flag_set(out, flag)
        elif in_model:
            assert flag_set(out, flag) == flag_set(supported, flag), flag
        else:
            assert not flag_set(out, flag), f"{model} leaks {flag}"


def test_model_table_matches_product_table() -> None:
    from quantavirt._ffi import lib

    def model_has(model: str, flag: str) -> bool:
        r = lib.qv_cpuid_model_has(model.encode(), flag.encode())
        assert r in (0, 1)
        return r == 1

    assert cpuid.model_names() == ["Skylake-Server", "Cascadelake-Server", "Icelake-Server",
                                   "SapphireRapids", "EPYC", "EPYC-Rome", "EPYC-Milan",
                                   "EPYC-Genoa"]
    assert all(model_has("Skylake-Server", f) for f in ("avx512f", "aes", "adx"))
    assert model_has("Cascadelake-Server", "avx512_vnni")
    assert not model_has("Skylake-Server", "avx512_vnni")
    assert model_has("Icelake-Server", "sha_ni") and model_has("Icelake-Server", "vpclmulqdq")
    assert not model_has("Cascadelake-Server", "sha_ni")
    assert model_has("SapphireRapids", "amx_tile") and model_has("SapphireRapids", "avx512_bf16")
    assert all(model_has("EPYC", f) for f in ("avx2", "aes", "sha_ni"))
    assert not model_has("EPYC", "avx512f")
    assert model_has("EPYC-Rome", "rdpid") and model_has("EPYC-Rome", "wbnoinvd")
    assert not model_has("EPYC", "rdpid")
    assert model_has("EPYC-Milan", "vaes") and model_has("EPYC-Milan", "vpclmulqdq")
    assert model_has("EPYC-Genoa", "avx512f") and not model_has("EPYC-Milan", "avx512f")
    assert lib.qv_cpuid_model_has(b"Pentium", b"sse") < 0
    assert lib.qv_cpuid_model_has(b"EPYC", b"nonsense") < 0
    # Every flag name is unique and every location distinct.
    assert len(set(FLAGS.values())) == len(FLAGS)


@needs_kvm
def test_overrides(supported: list[CpuidEntry]) -> None:
    present = next(f for f in ("sse4_2", "sse2", "fpu") if flag_set(supported, f))
    out = cpuid.build_cpuid(supported, 0, features=[f"-{present}"])
    assert not flag_set(out, present)
    absent = next(f for f in FLAGS if not flag_set(supported, f) and f not in
                  ("hypervisor", "ht", "cmp_legacy"))
    with pytest.raises(QVError) as e:
        cpuid.build_cpuid(supported, 0, features=["-sse2", f"+{absent}"])
    assert e.value.name == "QV_ERR_NODEV" and e.value.path == "cpu.features[1]"
    # A model feature switched off and another one back on.
    model_out = cpuid.build_cpuid(supported, 0, model="EPYC", features=[f"-{present}"])
    assert not flag_set(model_out, present)
    if flag_set(supported, "avx2"):
        out = cpuid.build_cpuid(supported, 0, model="Skylake-Server", features=["-avx2"])
        assert not flag_set(out, "avx2")
        out = cpuid.build_cpuid(supported, 0, model="EPYC", features=["-avx2", "+avx2"])
        assert flag_set(out, "avx2")


@needs_kvm
@pytest.mark.parametrize(("kwargs", "name", "path"), [
    ({"features": ["+no_such_flag"]}, "QV_ERR_INVAL", "cpu.features[0]"),
    ({"features": ["sse2"]}, "QV_ERR_INVAL", "cpu.features[0]"),
    ({"features": ["+"]}, "QV_ERR_INVAL", "cpu.features[0]"),
    ({"model": "Pentium-Pro"}, "QV_ERR_INVAL", "cpu.model"),
    ({"threads": 3}, "QV_ERR_INVAL", "cpu.topology"),
    ({"sockets": 0}, "QV_ERR_INVAL", "cpu.topology"),
    ({"cores": 129}, "QV_ERR_INVAL", "cpu.topology"),
])
def test_bad_config(supported: list[CpuidEntry], kwargs: dict[str, object], name: str,
                    path: str) -> None:
    with pytest.raises(QVError) as e:
        cpuid.build_cpuid(supported, 0, **kwargs)  # type: ignore[arg-type]
    assert e.value.name == name and e.value.path == path


@needs_kvm
def test_vcpu_index_out_of_range(supported: list[CpuidEntry]) -> None:
    with pytest.raises(QVError) as e:
        cpuid.build_cpuid(supported, 4, cores=2, threads=2)
    assert e.value.name == "QV_ERR_INVAL"


@needs_kvm
def test_strict_model_reports_missing_features(supported: list[CpuidEntry]) -> None:
    from quantavirt._ffi import lib
    # A model with a feature this host's KVM lacks (SapphireRapids' AMX, almost surely).
    for model in reversed(cpuid.model_names()):
        missing = [f for f in FLAGS if lib.qv_cpuid_model_has(model.encode(), f.encode()) == 1
                   and not flag_set(supported, f) and f != "hypervisor"]
        if missing:
            break
    else:
        pytest.skip("this host's KVM offers every feature of every model")
    with pytest.raises(QVError) as e:
        cpuid.build_cpuid(supported, 0, model=model, strict=True)
    assert e.value.name == "QV_ERR_NODEV" and e.value.path == "cpu.model"
    assert missing[0] in e.value.message
    cpuid.build_cpuid(supported, 0, model=model)  # not strict: dropped, no error


def test_intel_cache_and_extended_topology() -> None:
    sup = intel_supported()
    out = cpuid.build_cpuid(sup, 5, sockets=2, cores=3, threads=2)
    apic = cpuid.apic_id(2, 3, 2, 5)
    assert apic == (0 << 3) | (2 << 1) | 1
    for sub in range(4):
        eax = find(out, 4, sub).eax
        level = (eax >> 5) & 7
        assert eax >> 26 == (1 << 2) - 1  # core ids: 2 bits
        sharing = ((eax >> 14) & 0xFFF) + 1
        assert sharing == (8 if level == 3 else 2)
        assert eax & 0x3FFF == find(sup, 4, sub).eax & 0x3FFF
    assert find(out, 4, 4).eax == 0
    for leaf in (0xB, 0x1F):
        assert [find(out, leaf, n).edx for n in range(3)] == [apic] * 3
        assert find(out, leaf, 1).ebx == 6
    # Intel: the AMD-only leaves are left alone.
    assert find(out, 0x80000008).ecx == 0
    assert not find(out, 0x80000001).ecx >> 1 & 1


def test_intel_model_masks_xsave_components() -> None:
    sup = intel_supported()
    out = cpuid.build_cpuid(sup, 0, model="Skylake-Server")
    assert find(out, 0xD, 0).eax & 0xE0 == 0xE0  # AVX-512 state kept with avx512f
    out = cpuid.build_cpuid(sup, 0, model="EPYC")
    assert find(out, 0xD, 0).eax & 0xE0 == 0  # no AVX-512 in the model: no ZMM state
    assert find(out, 0xD, 0).eax & 0x4  # AVX state kept
    assert not flag_set(out, "avx512f") and flag_set(out, "avx2")


def test_without_kvm_list_is_rejected() -> None:
    with pytest.raises(QVError) as e:
        cpuid.build_cpuid([], 0)
    assert e.value.name == "QV_ERR_INVAL"


LEAVES = [0x0, 0x1, 0x4, 0x7, 0xB, 0xD, 0x1F, 0x80000000, 0x80000001, 0x80000008, 0x8000001D,
          0x8000001E]


def test_arbitrary_supported_lists_never_break() -> None:
    """Whatever KVM's reply holds (duplicates, missing leaves, odd vendors), building either
    succeeds with consistent topology or fails with a QV error."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    u32 = st.integers(0, 0xFFFFFFFF)
    entry = st.builds(CpuidEntry, st.sampled_from(LEAVES), st.integers(0, 4), st.integers(0, 7),
                      u32, u32, u32, u32)
    models = st.sampled_from(["host", *cpuid.model_names()])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(entry, min_size=1, max_size=40), models, st.integers(1, 8),
           st.integers(1, 128), st.integers(1, 2), st.data())
    def check(sup: list[CpuidEntry], model: str, sockets: int, cores: int, threads: int,
              data: st.DataObject) -> None:
        index = data.draw(st.integers(0, sockets * cores * threads - 1))
        out = cpuid.build_cpuid(sup, index, model=model, sockets=sockets, cores=cores,
                                threads=threads)
        assert len(out) <= len(sup) + 6
        apic = cpuid.apic_id(sockets, cores, threads, index)
        for e in out:
            if e.function == 0x1:
                assert e.ebx >> 24 == apic & 0xFF
            if e.function in (0xB, 0x1F):
                assert e.edx == apic

    check()
