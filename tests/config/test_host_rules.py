"""Host-dependent rules: disks, networks, name in use, SEV/TDX, hugepages, CPU, QUAC 100."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from qv_config_cases import apply, base, define_network, localize

from quantavirt.config import validate
from quantavirt.errors import QVMultiError
from quantavirt.host import HostInfo, HugepagePool, probe

HOST = HostInfo(networks=frozenset({"br0", "eth0"}))


def problems(doc: Any, host: HostInfo = HOST) -> list[tuple[str, str]]:
    try:
        validate(doc, host=host)
    except QVMultiError as err:
        return [(item.name, item.path) for item in err.items]
    return []


def test_localized_base_is_valid(home: Path) -> None:
    assert problems(localize(base(), home)) == []


def test_missing_disk_and_cdrom(home: Path) -> None:
    doc = localize(base(), home)
    doc["storage"].append({"path": str(home / "none.iso"), "media": "cdrom"})
    assert problems(doc) == [("QV_ERR_NOENT", "storage[1].path")]


def test_disk_that_is_a_directory(home: Path) -> None:
    doc = apply(localize(base(), home), [(("storage", 0, "path"), str(home))])
    assert problems(doc) == [("QV_ERR_INVAL", "storage[0].path")]


def test_network_from_host_or_state_dir(home: Path) -> None:
    doc = apply(localize(base(), home), [(("network", 1), {"network": "eth0"}),
                                         (("network", 2), {"network": "lab"})])
    assert problems(doc) == [("QV_ERR_NOENT", "network[2].network")]
    with pytest.raises(QVMultiError, match="network 'lab' not found"):
        validate(doc, host=HOST)
    define_network(home, "lab")
    assert problems(doc) == []


def test_real_probe_knows_this_hosts_interfaces(home: Path) -> None:
    names = sorted(os.listdir("/sys/class/net"))
    doc = apply(localize(base(), home), [(("network",), [{"network": names[0]}])])
    assert problems(doc, probe()) == []


def test_name_in_use(home: Path) -> None:
    doc = localize(base(), home)
    (home / "vms" / "vm1").mkdir()
    assert problems(doc) == [("QV_ERR_EXIST", "name")]
    assert validate(doc, host=HOST, allow_existing=True)["name"] == "vm1"


def test_state_dir_defaults_to_var_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    from quantavirt import state

    monkeypatch.delenv("QUANTAVIRT_HOME", raising=False)
    assert state.vm_dir("x") == Path("/var/lib/quantavirt/vms/x")
    assert state.network_file("n") == Path("/var/lib/quantavirt/networks/n.json")


SEV_SNP = [(("security", "sev"), {"enabled": True, "es": True, "snp": True}),
           (("memory", "encrypted"), True)]


@pytest.mark.parametrize(("host", "expected"), [
    (HOST, [("QV_ERR_NODEV", "security.sev"), ("QV_ERR_NODEV", "security.sev.es"),
            ("QV_ERR_NODEV", "security.sev.snp")]),
    (HostInfo(networks=HOST.networks, sev=True), [("QV_ERR_NODEV", "security.sev.es"),
                                                  ("QV_ERR_NODEV", "security.sev.snp")]),
    (HostInfo(networks=HOST.networks, sev=True, sev_es=True),
     [("QV_ERR_NODEV", "security.sev.snp")]),
    (HostInfo(networks=HOST.networks, sev=True, sev_es=True, sev_snp=True), []),
])
def test_sev_levels(home: Path, host: HostInfo, expected: list[tuple[str, str]]) -> None:
    assert problems(apply(localize(base(), home), SEV_SNP), host) == expected


def test_tdx(home: Path) -> None:
    doc = apply(localize(base(), home), [(("security", "tdx", "enabled"), True)])
    assert problems(doc) == [("QV_ERR_NODEV", "security.tdx")]
    assert problems(doc, HostInfo(networks=HOST.networks, tdx=True)) == []


def test_hugepages_cpu_and_quac100(home: Path) -> None:
    doc = apply(localize(base(), home), [
        (("memory", "hugepages"), "1G"), (("cpu", "model"), "EPYC-Genoa"),
        (("cpu", "features"), ["+avx512f", "-aes"]), (("cpu", "count"), 300 // 100),
        (("pqc",), {"enabled": True, "backend": "quac100"})])
    host = HostInfo(networks=HOST.networks, hugepages={"2M": HugepagePool("2M", 8, 8)},
                    cpu_models=("EPYC", "EPYC-Rome"), cpu_flags=frozenset({"aes"}), max_vcpus=2)
    assert problems(doc, host) == [
        ("QV_ERR_NODEV", "cpu.count"), ("QV_ERR_NODEV", "cpu.model"),
        ("QV_ERR_NODEV", "cpu.features[0]"), ("QV_ERR_NODEV", "memory.hugepages"),
        ("QV_ERR_NODEV", "pqc.backend")]
    # Facts the probe left empty are unknown, not held against the config.
    assert problems(doc, HostInfo(networks=HOST.networks, quac100_devices=("/dev/q",))) == []


def test_boot_files_and_console_log_directory(home: Path) -> None:
    kernel = home / "vmlinuz"
    kernel.write_bytes(b"MZ")
    doc = apply(localize(base(), home), [
        (("boot",), {"kernel": str(kernel), "initrd": str(home / "initrd.img")}),
        (("console", "log"), str(home / "no-such-dir" / "console.log"))])
    assert problems(doc) == [("QV_ERR_NOENT", "boot.initrd"), ("QV_ERR_NOENT", "console.log")]


def test_host_checks_are_optional(home: Path) -> None:
    assert validate(base(), check_host=False)["name"] == "vm1"
    assert ("QV_ERR_NOENT", "storage[0].path") in problems(base())


def test_unencodable_and_huge_values(home: Path) -> None:
    doc = apply(localize(base(), home), [(("storage", 0, "path"), "/\ud800"),
                                         (("cpu", "count"), 10 ** 5000)])
    assert problems(doc) == [("QV_ERR_INVAL", "cpu.count"), ("QV_ERR_INVAL", "storage[0].path")]
