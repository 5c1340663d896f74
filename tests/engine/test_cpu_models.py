"""`host info` lists the named CPU models KVM can serve on this host (every flag of the model's
baseline, as the engine masks CPUID to it, is in KVM_GET_SUPPORTED_CPUID), and config
validation refuses the others with the documented QV_ERR_NODEV at cpu.model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from quantavirt.config import validate
from quantavirt.cpuid import (
    CpuidEntry,
    build_cpuid,
    feature_locations,
    model_baselines,
    supported_cpuid,
)
from quantavirt.errors import QVError, QVMultiError
from quantavirt.host import (
    HostInfo,
    offered_cpuid_flags,
    probe,
    servable_cpu_models,
)

BASELINES = model_baselines()


def _entries(flags: frozenset[str]) -> list[CpuidEntry]:
    """A synthetic KVM_GET_SUPPORTED_CPUID list with exactly `flags` set."""
    regs: dict[tuple[int, int], list[int]] = {}
    for name in flags:
        fn, idx, reg, bit = feature_locations()[name]
        regs.setdefault((fn, idx), [0, 0, 0, 0])[reg] |= 1 << bit
    out = [CpuidEntry(0, 0, 0, 0x80000008, 0x68747541, 0x444D4163, 0x69746E65),
           CpuidEntry(0x80000000, 0, 0, 0x80000008, 0, 0, 0)]
    for (fn, idx), (a, b, c, d) in sorted(regs.items()):
        out.append(CpuidEntry(fn, idx, 1 if fn in (0x7, 0xD) else 0, a, b, c, d))
    return out


# --- synthetic flag sets ---------------------------------------------------------------------

def test_the_table_is_the_engines_eight_models() -> None:
    assert list(BASELINES) == ["Skylake-Server", "Cascadelake-Server", "Icelake-Server",
                               "SapphireRapids", "EPYC", "EPYC-Rome", "EPYC-Milan",
                               "EPYC-Genoa"]


def test_a_host_offering_a_baseline_serves_it_and_its_predecessors() -> None:
    milan = BASELINES["EPYC-Milan"]
    assert servable_cpu_models(milan, BASELINES) == ("EPYC", "EPYC-Rome", "EPYC-Milan")
    icelake = BASELINES["Icelake-Server"]
    assert servable_cpu_models(icelake, BASELINES) == ("Skylake-Server", "Cascadelake-Server",
                                                       "Icelake-Server")


def test_one_missing_flag_drops_the_model() -> None:
    offered = BASELINES["EPYC-Genoa"] - {"avx512_bf16"}
    assert "EPYC-Genoa" not in servable_cpu_models(offered, BASELINES)
    assert "EPYC-Milan" in servable_cpu_models(offered, BASELINES)
    assert servable_cpu_models(frozenset(), BASELINES) == ()


def test_the_hypervisor_bit_is_the_engines_own() -> None:
    # The engine sets it on every vCPU; KVM's list need not offer it.
    offered = BASELINES["Skylake-Server"] - {"hypervisor"}
    assert "Skylake-Server" in servable_cpu_models(offered, BASELINES)


def test_flags_are_read_from_the_right_leaf_and_subleaf() -> None:
    offered = offered_cpuid_flags(_entries(frozenset({"popcnt", "avx2", "avx512_bf16", "lm"})))
    assert offered == {"popcnt", "avx2", "avx512_bf16", "lm"}
    # Leaf 7 subleaf 1 EAX bit 5 is avx512_bf16; the same bit of subleaf 0's EAX means nothing.
    only_sub0 = [CpuidEntry(7, 0, 1, 1 << 5, 0, 0, 0)]
    assert offered_cpuid_flags(only_sub0) == frozenset()


def test_round_trip_through_a_synthetic_kvm_list() -> None:
    for name, flags in BASELINES.items():
        offered = offered_cpuid_flags(_entries(flags))
        assert name in servable_cpu_models(offered, BASELINES)


# --- validation against the probe ------------------------------------------------------------

def _doc(model: str) -> dict[str, object]:
    return {"name": "cpu-model-test", "cpu": {"count": 1, "model": model},
            "memory": {"size": "128M"}, "storage": [{"path": "/dev/null"}]}


def _cpu_model_errors(doc: dict[str, object], host: HostInfo) -> list[str]:
    try:
        validate(doc, host=host)
    except QVMultiError as e:
        return [f"{i.name} {i.path}: {i.message}" for i in e.items if i.path == "cpu.model"]
    return []


def test_validation_uses_the_probed_models() -> None:
    host = HostInfo(cpu_models=("EPYC", "EPYC-Rome"), cpu_models_known=True)
    assert _cpu_model_errors(_doc("EPYC-Rome"), host) == []
    assert _cpu_model_errors(_doc("host"), host) == []
    errors = _cpu_model_errors(_doc("EPYC-Milan"), host)
    assert len(errors) == 1 and errors[0].startswith("QV_ERR_NODEV cpu.model: CPU model "
                                                     "EPYC-Milan is not available on this host")
    assert "EPYC, EPYC-Rome" in errors[0]


def test_a_probe_that_found_no_model_refuses_every_named_one() -> None:
    host = HostInfo(cpu_models=(), cpu_models_known=True)
    assert len(_cpu_model_errors(_doc("Skylake-Server"), host)) == 1
    # Unknown (no KVM to ask): not held against the config.
    assert _cpu_model_errors(_doc("Skylake-Server"), HostInfo()) == []


def _feature_errors(features: list[str], host: HostInfo) -> list[str]:
    doc = {**_doc("host"), "cpu": {"count": 1, "model": "host", "features": features}}
    try:
        validate(doc, host=host)
    except QVMultiError as e:
        return [f"{i.path}: {i.message}" for i in e.items if i.path.startswith("cpu.features")]
    return []


def test_plus_flag_is_checked_against_what_kvm_offers() -> None:
    # The host CPU has popcnt but KVM does not offer it (this machine's emulating backend):
    # the engine would refuse it at start, so validation refuses it first.
    host = HostInfo(cpu_flags=frozenset({"popcnt", "sse2"}),
                    kvm_cpuid_flags=frozenset({"sse2"}), cpu_models_known=True)
    assert _feature_errors(["+popcnt"], host) == [
        "cpu.features[0]: KVM on this host does not offer popcnt"]
    assert _feature_errors(["+sse2", "-popcnt"], host) == []
    # KVM not asked: the host CPU's flags decide.
    assert _feature_errors(["+popcnt"], HostInfo(cpu_flags=frozenset({"popcnt"}))) == []
    assert _feature_errors(["+avx2"], HostInfo(cpu_flags=frozenset({"popcnt"}))) == [
        "cpu.features[0]: this host's CPU lacks avx2"]


# --- the real host ---------------------------------------------------------------------------

@pytest.mark.kvm
def test_the_probe_agrees_with_the_engines_strict_masking() -> None:
    info = probe()
    assert info.cpu_models_known
    supported = supported_cpuid()
    for model in BASELINES:
        try:
            build_cpuid(supported, 0, model=model, strict=True)
            servable = True
        except QVError as e:
            assert e.name == "QV_ERR_NODEV"
            servable = False
        assert (model in info.cpu_models) == servable, model


@pytest.mark.kvm
def test_host_info_shows_the_models_and_validation_follows_it() -> None:
    info = probe()
    out = subprocess.run([sys.executable, "-m", "quantavirt", "host", "info", "--json"],
                         capture_output=True, text=True, check=True)
    shown = json.loads(out.stdout)
    assert tuple(shown["cpu_models"]) == info.cpu_models and shown["cpu_models_known"] is True
    text = subprocess.run([sys.executable, "-m", "quantavirt", "host", "info"],
                          capture_output=True, text=True, check=True).stdout
    assert "CPU models:       host, " in text
    for model in BASELINES:
        errors = _cpu_model_errors(_doc(model), info)
        assert (errors == []) == (model in info.cpu_models), (model, errors)


@pytest.mark.kvm
def test_this_emulating_backend_offers_no_named_model() -> None:
    info = probe()
    if info.kvm_backend != "emulating":
        pytest.skip("measured on the emulating backend only")
    # Its KVM_GET_SUPPORTED_CPUID lacks SSSE3, SSE4.x, POPCNT, AVX, ... (see docs/engine.md).
    assert info.cpu_models == ()
    assert "CPU models:       host, none of the named models" in subprocess.run(
        [sys.executable, "-m", "quantavirt", "host", "info"], capture_output=True, text=True,
        check=True).stdout


def test_the_cli_reports_unknown_models_without_kvm(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "quantavirt", "host", "info", "--json",
                          "--kvm-device", str(tmp_path / "no-kvm")],
                         capture_output=True, text=True, check=True)
    shown = json.loads(out.stdout)
    assert shown["cpu_models"] == [] and shown["cpu_models_known"] is False
