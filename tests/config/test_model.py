"""The field model's building blocks: sizes, CPU models and flags, paths."""

from __future__ import annotations

import pytest

from quantavirt.config.cpu_models import CPU_MODELS, KNOWN_CPUID_FLAGS, guest_features
from quantavirt.config.fields import format_path
from quantavirt.config.sizes import format_size, parse_size


@pytest.mark.parametrize(("text", "nbytes"), [
    ("512M", 512 << 20), ("8G", 8 << 30), ("1T", 1 << 40), ("4K", 4096), ("4096", 4096),
    ("2g", 2 << 30)])
def test_sizes_are_powers_of_1024(text: str, nbytes: int) -> None:
    assert parse_size(text) == nbytes
    assert parse_size(format_size(nbytes)) == nbytes


def test_cpu_models_are_the_schema_table() -> None:
    assert list(CPU_MODELS) == ["Skylake-Server", "Cascadelake-Server", "Icelake-Server",
                                "SapphireRapids", "EPYC", "EPYC-Rome", "EPYC-Milan",
                                "EPYC-Genoa"]
    for model in CPU_MODELS.values():
        assert model.features <= KNOWN_CPUID_FLAGS, model.features - KNOWN_CPUID_FLAGS
        assert model.vendor == ("AuthenticAMD" if model.name.startswith("EPYC")
                                else "GenuineIntel")


@pytest.mark.parametrize(("older", "newer", "added"), [
    ("Skylake-Server", "Cascadelake-Server", {"avx512_vnni"}),
    ("Cascadelake-Server", "Icelake-Server", {"sha_ni", "vpclmulqdq"}),
    ("Icelake-Server", "SapphireRapids", {"amx_tile", "avx512_bf16"}),
    ("EPYC", "EPYC-Rome", {"rdpid", "wbnoinvd"}),
    ("EPYC-Rome", "EPYC-Milan", {"vaes", "vpclmulqdq"}),
    ("EPYC-Milan", "EPYC-Genoa", {"avx512f"}),
])
def test_each_generation_adds_its_notable_features(older: str, newer: str,
                                                   added: set[str]) -> None:
    assert CPU_MODELS[older].features < CPU_MODELS[newer].features
    assert added <= CPU_MODELS[newer].features - CPU_MODELS[older].features


def test_notable_baseline_features() -> None:
    assert {"avx512f", "aes", "adx"} <= CPU_MODELS["Skylake-Server"].features
    assert {"avx2", "aes", "sha_ni"} <= CPU_MODELS["EPYC"].features
    assert "avx512f" not in CPU_MODELS["EPYC-Milan"].features


def test_guest_features_apply_overrides() -> None:
    flags = guest_features("EPYC", ["+avx512f", "-aes"])
    assert "avx512f" in flags and "aes" not in flags


def test_format_path() -> None:
    assert format_path(()) == "$"
    assert format_path(("storage", 0, "io")) == "storage[0].io"
    assert format_path(("cpu", "pin", "3")) == "cpu.pin.3"
    assert format_path(("a b",)) == '["a b"]'
