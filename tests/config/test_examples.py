"""The schema's three example configs, against this host's real probe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from qv_config_cases import EXAMPLE_NAMES, EXAMPLES, example, localize

from quantavirt.config import load_file, validate
from quantavirt.config.cpu_models import CPU_MODELS
from quantavirt.errors import QVMultiError
from quantavirt.host import HostInfo, probe


def _confidential_host() -> HostInfo:
    """This host as probed, plus the SEV-SNP, QUAC 100 and CPU-model facts it lacks."""
    return dataclasses.replace(probe(), sev=True, sev_es=True, sev_snp=True,
                               quac100_devices=("/dev/quac100_0",),
                               cpu_models=tuple(CPU_MODELS))


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_files_are_the_schema_examples(name: str) -> None:
    doc = example(name)
    assert doc["name"] == name
    assert validate(doc, check_host=False)["name"] == name


@pytest.mark.parametrize("name", ["minimal-linux", "postgres-prod"])
def test_example_validates_once_its_disks_and_networks_exist(name: str, home: Path) -> None:
    doc = localize(example(name), home)
    config = home / f"{name}.json"
    config.write_text(json.dumps(doc))
    effective = load_file(config)  # the real host probe
    assert effective["name"] == name
    assert effective["storage"][0]["path"] == doc["storage"][0]["path"]


def test_classified_example_validates_on_a_confidential_host(home: Path) -> None:
    doc = localize(example("classified-workload"), home)
    config = home / "classified.json"
    config.write_text(json.dumps(doc))
    effective = load_file(config, host=_confidential_host())
    assert effective["security"]["sev"] == {"enabled": True, "policy": 0, "es": False,
                                            "snp": True}
    assert effective["storage"][0]["encrypted"] == {"kem": "ML-KEM-1024",
                                                    "aead": "AES-256-GCM"}


def test_classified_example_fails_on_this_host_without_sev(home: Path) -> None:
    host = probe()
    if host.sev:
        pytest.skip("this host has AMD SEV")
    doc = localize(example("classified-workload"), home)
    with pytest.raises(QVMultiError) as info:
        validate(doc)  # the real probe
    found = {(item.name, item.path) for item in info.value.items}
    assert ("QV_ERR_NODEV", "security.sev") in found
    assert "AMD SEV not available on this host" in str(info.value)


def test_unlocalized_examples_name_their_missing_disk(home: Path) -> None:
    with pytest.raises(QVMultiError) as info:
        load_file(EXAMPLES / "minimal-linux.json")
    assert [(i.name, i.path) for i in info.value.items] == [("QV_ERR_NOENT", "storage[0].path")]
    assert "/var/lib/quantavirt/disks/minimal.qcow2" in info.value.items[0].message
