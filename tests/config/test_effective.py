"""The effective config: defaults, uuid, MACs, canonical sizes, key order, stability."""

from __future__ import annotations

import re
import uuid

from qv_config_cases import FULL, apply, base

from quantavirt.config import validate
from quantavirt.config.model import VM

UUID4 = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_every_default_is_filled_in_schema_order() -> None:
    eff = validate(base(), check_host=False)
    assert list(eff) == [f.name for f in VM.fields]
    assert eff["description"] == ""
    assert eff["cpu"] == {"count": 4, "model": "host", "features": [],
                          "topology": {"sockets": 1, "cores": 4, "threads": 1},
                          "weight": 256, "cap": 0}
    assert eff["memory"] == {"size": "1G", "hugepages": False, "balloon": False,
                             "max_size": "1G", "prealloc": False, "encrypted": False}
    assert eff["storage"] == [{"type": "virtio-blk", "path": "/img/a.qcow2", "readonly": False,
                               "media": "disk", "cache": "writeback", "io": "threads",
                               "queues": 1, "discard": False}]
    nic = eff["network"][0]
    assert list(nic) == ["type", "network", "mac", "queues", "vhost", "mtu", "offload",
                         "pqc_tunnel", "pqc_kem", "pqc_aead"]
    assert nic["offload"] == {"tso": True, "gso": True, "gro": True, "csum": True}
    assert eff["console"] == {"type": "virtio-console"}
    assert eff["graphics"] == {"type": "none", "virgl": False}
    assert eff["usb"] == []
    assert eff["boot"] == {"order": ["disk", "cdrom"], "uefi": False, "secure_boot": False}
    assert eff["pqc"]["attestation"] == {"enabled": False, "algorithm": "ML-DSA-65"}
    assert eff["migration"]["bandwidth"] == "1G"
    assert eff["security"] == {"sev": {"enabled": False, "policy": 0, "es": False,
                                       "snp": False}, "tdx": {"enabled": False}}


def test_generated_uuid_is_v4_and_a_given_one_is_kept() -> None:
    generated = validate(base(), check_host=False)["uuid"]
    parsed = uuid.UUID(generated)
    assert parsed.version == 4 and str(parsed) == generated
    assert validate(apply(base(), [(("uuid",), UUID4.upper())]),
                    check_host=False)["uuid"] == UUID4


def test_output_is_stable_and_a_fixed_point() -> None:
    doc = apply(base(), [(("uuid",), UUID4), (("network", 1), {"network": "br1"})])
    first = validate(doc, check_host=False)
    second = validate(doc, check_host=False)
    assert first == second
    assert list(first) == list(second)
    assert validate(first, check_host=False) == first
    macs = [nic["mac"] for nic in first["network"]]
    assert len(set(macs)) == 2
    assert all(re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", mac) for mac in macs)


def test_macs_depend_on_uuid_and_avoid_given_ones() -> None:
    a = validate(apply(base(), [(("uuid",), UUID4)]), check_host=False)["network"][0]["mac"]
    other = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    b = validate(apply(base(), [(("uuid",), other)]), check_host=False)["network"][0]["mac"]
    assert a != b
    doc = apply(base(), [(("uuid",), UUID4), (("network", 0, "mac"), a.upper()),
                         (("network", 1), {"network": "br0"})])
    eff = validate(doc, check_host=False)
    assert eff["network"][0]["mac"] == a
    assert eff["network"][1]["mac"] != a


def test_derived_and_canonical_values() -> None:
    eff = validate(FULL, check_host=False)
    assert eff["storage"][0]["encrypted"] == {"kem": "ML-KEM-512", "aead": "AES-256-GCM"}
    assert eff["storage"][1]["readonly"] is True  # cdrom
    assert "encrypted" not in eff["storage"][2]
    assert eff["usb"][0]["product_id"] == "0xc52b"
    eff = validate(apply(base(), [(("memory",), {"size": "2048m"}),
                                  (("cpu",), {"count": 200, "pin": {"10": 1, "2": 0}})]),
                   check_host=False)
    assert eff["memory"]["size"] == "2G" and eff["memory"]["max_size"] == "2G"
    assert eff["cpu"]["topology"] == {"sockets": 2, "cores": 100, "threads": 1}
    assert list(eff["cpu"]["pin"]) == ["2", "10"]
    eff = validate(apply(base(), [(("cpu", "topology"), {"sockets": 2})]), check_host=False)
    assert eff["cpu"]["topology"] == {"sockets": 2, "cores": 2, "threads": 1}


def test_encrypted_disk_defaults_come_from_pqc_storage_encryption() -> None:
    doc = apply(base(), [(("storage", 0, "format"), "encrypted"), (("pqc", "enabled"), True),
                         (("pqc", "storage_encryption"), {"kem": "ML-KEM-1024",
                                                          "aead": "ChaCha20-Poly1305"})])
    eff = validate(doc, check_host=False)
    assert eff["storage"][0]["encrypted"] == {"kem": "ML-KEM-1024", "aead": "ChaCha20-Poly1305"}
