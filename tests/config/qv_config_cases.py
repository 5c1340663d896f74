"""Shared data of the config tests: the examples, a small valid BASE config, helpers that
make a config's disks and networks exist, and the table of bad configs (each is BASE with a
few changes, the documented error code and the JSON path the validator must report with
check_host=False)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
EXAMPLE_NAMES = ("minimal-linux", "postgres-prod", "classified-workload")

# A small valid config the bad-config table mutates (valid with check_host=False).
BASE: dict[str, Any] = {
    "name": "vm1",
    "cpu": {"count": 4},
    "memory": {"size": "1G"},
    "storage": [{"path": "/img/a.qcow2"}],
    "network": [{"network": "br0"}],
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def define_network(home: Path, name: str) -> None:
    (home / "networks" / f"{name}.json").write_text(json.dumps({"name": name}))


def localize(doc: dict[str, Any], home: Path) -> dict[str, Any]:
    """``doc`` with every disk path rewritten to a file made under ``home`` and every named
    network defined in $QUANTAVIRT_HOME/networks."""
    doc = copy.deepcopy(doc)
    disks = home / "disks"
    disks.mkdir(exist_ok=True)
    for i, disk in enumerate(doc.get("storage", [])):
        image = disks / f"disk{i}.img"
        image.write_bytes(b"\0" * 4096)
        disk["path"] = str(image)
    for nic in doc.get("network", []):
        define_network(home, nic["network"])
    return doc

DELETE = object()
Change = tuple[tuple[str | int, ...], Any]


def apply(doc: Any, changes: list[Change]) -> Any:
    doc = copy.deepcopy(doc)
    for path, value in changes:
        if not path:
            doc = copy.deepcopy(value)
            continue
        parent = doc
        for key in path[:-1]:
            if isinstance(parent, dict) and key not in parent:
                parent[key] = {}
            parent = parent[key]
        if value is DELETE:
            del parent[path[-1]]
        elif isinstance(parent, list) and path[-1] == len(parent):
            parent.append(copy.deepcopy(value))
        else:
            parent[path[-1]] = copy.deepcopy(value)
    return doc


@dataclass
class Bad:
    id: str
    changes: list[Change]
    path: str
    code: str = "QV_ERR_INVAL"
    extra: list[str] = field(default_factory=list)

    def doc(self) -> Any:
        return apply(base(), self.changes)


GPU = (("graphics", "type"), "virtio-gpu")
PQC_ON = (("pqc", "enabled"), True)
UUID_V1 = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

BAD: list[Bad] = [
    Bad("root-not-object", [((), ["name"])], "$"),
    Bad("unknown-top-level", [(("nmae",), "x")], "nmae"),
    Bad("name-missing", [(("name",), DELETE)], "name"),
    Bad("name-empty", [(("name",), "")], "name"),
    Bad("name-too-long", [(("name",), "a" * 65)], "name"),
    Bad("name-slash", [(("name",), "bad/name")], "name"),
    Bad("name-dotdot", [(("name",), "..")], "name"),
    Bad("name-int", [(("name",), 5)], "name"),
    Bad("description-long", [(("description",), "d" * 513)], "description"),
    Bad("description-null", [(("description",), None)], "description"),
    Bad("uuid-garbage", [(("uuid",), "not-a-uuid")], "uuid"),
    Bad("uuid-v1", [(("uuid",), UUID_V1)], "uuid"),
    Bad("cpu-missing", [(("cpu",), DELETE)], "cpu"),
    Bad("cpu-count-string", [(("cpu", "count"), "4")], "cpu.count"),
    Bad("cpu-count-bool", [(("cpu", "count"), True)], "cpu.count"),
    Bad("cpu-count-zero", [(("cpu", "count"), 0)], "cpu.count"),
    Bad("cpu-count-257", [(("cpu", "count"), 257)], "cpu.count"),
    Bad("cpu-count-float", [(("cpu", "count"), 4.0)], "cpu.count"),
    Bad("cpu-model-unknown", [(("cpu", "model"), "Haswell")], "cpu.model"),
    Bad("cpu-feature-no-sign", [(("cpu", "features"), ["aes"])], "cpu.features[0]"),
    Bad("cpu-feature-unknown", [(("cpu", "features"), ["+notaflag"])], "cpu.features[0]"),
    Bad("cpu-feature-conflict", [(("cpu", "features"), ["+aes", "-aes"])], "cpu.features[1]"),
    Bad("cpu-feature-duplicate", [(("cpu", "features"), ["+aes", "+aes"])], "cpu.features[1]"),
    Bad("cpu-features-string", [(("cpu", "features"), "+aes")], "cpu.features"),
    Bad("topology-product", [(("cpu", "topology"), {"sockets": 2, "cores": 4, "threads": 2})],
        "cpu.topology"),
    Bad("topology-indivisible", [(("cpu", "topology"), {"sockets": 3})], "cpu.topology"),
    Bad("count-131-needs-topology", [(("cpu", "count"), 131)], "cpu.topology"),
    Bad("topology-sockets-9", [(("cpu", "topology"), {"sockets": 9})], "cpu.topology.sockets"),
    Bad("topology-threads-3", [(("cpu", "topology"), {"threads": 3})], "cpu.topology.threads"),
    Bad("topology-cores-0", [(("cpu", "topology"), {"cores": 0})], "cpu.topology.cores"),
    Bad("topology-unknown-key", [(("cpu", "topology"), {"dies": 1})], "cpu.topology.dies"),
    Bad("pin-key-too-big", [(("cpu", "pin"), {"4": 1})], "cpu.pin.4"),
    Bad("pin-negative", [(("cpu", "pin"), {"0": -1})], "cpu.pin.0"),
    Bad("pin-key-not-index", [(("cpu", "pin"), {"x": 1})], "cpu.pin.x"),
    Bad("pin-key-leading-zero", [(("cpu", "pin"), {"01": 1})], "cpu.pin.01"),
    Bad("pin-value-string", [(("cpu", "pin"), {"0": "1"})], "cpu.pin.0"),
    Bad("cpu-weight-zero", [(("cpu", "weight"), 0)], "cpu.weight"),
    Bad("cpu-cap-101", [(("cpu", "cap"), 101)], "cpu.cap"),
    Bad("cpu-numa-negative", [(("cpu", "numa_node"), -1)], "cpu.numa_node"),
    Bad("cpu-unknown-key", [(("cpu", "cout"), 4)], "cpu.cout"),
    Bad("memory-missing", [(("memory",), DELETE)], "memory"),
    Bad("memory-below-min", [(("memory", "size"), "64M")], "memory.size"),
    Bad("memory-above-max", [(("memory", "size"), "5T")], "memory.size"),
    Bad("memory-int", [(("memory", "size"), 1073741824)], "memory.size"),
    Bad("memory-bad-suffix", [(("memory", "size"), "1GB")], "memory.size"),
    Bad("memory-unaligned", [(("memory", "size"), "134217729")], "memory.size"),
    Bad("hugepages-true", [(("memory", "hugepages"), True)], "memory.hugepages"),
    Bad("hugepages-4M", [(("memory", "hugepages"), "4M")], "memory.hugepages"),
    Bad("hugepages-misaligned", [(("memory", "hugepages"), "1G"), (("memory", "size"), "1536M")],
        "memory.size"),
    Bad("max-size-below-size", [(("memory", "max_size"), "512M")], "memory.max_size"),
    Bad("memory-encrypted-no-cc", [(("memory", "encrypted"), True)], "memory.encrypted"),
    Bad("memory-balloon-string", [(("memory", "balloon"), "yes")], "memory.balloon"),
    Bad("storage-empty", [(("storage",), [])], "storage"),
    Bad("storage-missing", [(("storage",), DELETE)], "storage"),
    Bad("storage-object", [(("storage",), {"path": "/a"})], "storage"),
    Bad("disk-path-relative", [(("storage", 0, "path"), "disk.img")], "storage[0].path"),
    Bad("disk-path-missing", [(("storage", 0, "path"), DELETE)], "storage[0].path"),
    Bad("disk-type-scsi", [(("storage", 0, "type"), "scsi")], "storage[0].type"),
    Bad("disk-format-vmdk", [(("storage", 0, "format"), "vmdk")], "storage[0].format"),
    Bad("io-native-writeback", [(("storage", 0, "io"), "native")], "storage[0].io"),
    Bad("io-native-writethrough", [(("storage", 0, "io"), "native"),
                                   (("storage", 0, "cache"), "writethrough")], "storage[0].io"),
    Bad("disk-queues-65", [(("storage", 0, "queues"), 65)], "storage[0].queues"),
    Bad("disk-queues-nvme", [(("storage", 0, "type"), "nvme"), (("storage", 0, "queues"), 4)],
        "storage[0].queues"),
    Bad("disk-discard-ide", [(("storage", 0, "type"), "ide"), (("storage", 0, "discard"), True)],
        "storage[0].discard"),
    Bad("disk-boot-index-100", [(("storage", 0, "boot_index"), 100)], "storage[0].boot_index"),
    Bad("disk-iops-zero", [(("storage", 0, "iops_limit"), 0)], "storage[0].iops_limit"),
    Bad("disk-io-limit-zero", [(("storage", 0, "io_limit"), "0")], "storage[0].io_limit"),
    Bad("cdrom-writable", [(("storage", 0, "media"), "cdrom"), (("storage", 0, "readonly"), False)],
        "storage[0].readonly"),
    Bad("encrypted-without-format", [(("storage", 0, "format"), "qcow2"),
                                     (("storage", 0, "encrypted"), {"kem": "ML-KEM-1024"})],
        "storage[0].encrypted"),
    Bad("encrypted-kem-unknown", [(("storage", 0, "format"), "encrypted"), PQC_ON,
                                  (("storage", 0, "encrypted"), {"kem": "ML-KEM-2048"})],
        "storage[0].encrypted.kem"),
    Bad("encrypted-aead-unknown", [(("storage", 0, "format"), "encrypted"), PQC_ON,
                                   (("storage", 0, "encrypted"), {"aead": "AES-128-GCM"})],
        "storage[0].encrypted.aead"),
    Bad("encrypted-format-no-pqc", [(("storage", 0, "format"), "encrypted")],
        "storage[0].format"),
    Bad("disk-duplicate-path", [(("storage", 1), {"path": "/img/a.qcow2"})], "storage[1].path"),
    Bad("disk-duplicate-boot-index", [(("storage", 0, "boot_index"), 1),
                                      (("storage", 1), {"path": "/img/b", "boot_index": 1})],
        "storage[1].boot_index"),
    Bad("nics-17", [(("network",), [{"network": "br0"}] * 17)], "network"),
    Bad("nic-network-missing", [(("network", 0, "network"), DELETE)], "network[0].network"),
    Bad("nic-network-traversal", [(("network", 0, "network"), "../etc")], "network[0].network"),
    Bad("mac-multicast", [(("network", 0, "mac"), "01:00:5e:00:00:01")], "network[0].mac"),
    Bad("mac-broadcast", [(("network", 0, "mac"), "ff:ff:ff:ff:ff:ff")], "network[0].mac"),
    Bad("mac-zero", [(("network", 0, "mac"), "00:00:00:00:00:00")], "network[0].mac"),
    Bad("mac-short", [(("network", 0, "mac"), "52:54:00:12:34")], "network[0].mac"),
    Bad("mac-duplicate", [(("network", 0, "mac"), "52:54:00:12:34:56"),
                          (("network", 1), {"network": "br0", "mac": "52:54:00:12:34:56"})],
        "network[1].mac"),
    Bad("nic-mtu-575", [(("network", 0, "mtu"), 575)], "network[0].mtu"),
    Bad("nic-mtu-9001", [(("network", 0, "mtu"), 9001)], "network[0].mtu"),
    Bad("nic-vlan-0", [(("network", 0, "vlan"), 0)], "network[0].vlan"),
    Bad("nic-vlan-4095", [(("network", 0, "vlan"), 4095)], "network[0].vlan"),
    Bad("nic-queues-17", [(("network", 0, "queues"), 17)], "network[0].queues"),
    Bad("nic-queues-e1000", [(("network", 0, "type"), "e1000"), (("network", 0, "queues"), 2)],
        "network[0].queues"),
    Bad("nic-type-rtl", [(("network", 0, "type"), "rtl8139")], "network[0].type"),
    Bad("vhost-user-no-socket", [(("network", 0, "vhost_user"), {"server": True})],
        "network[0].vhost_user.socket"),
    Bad("vhost-user-relative", [(("network", 0, "vhost_user"), {"socket": "vhu.sock"})],
        "network[0].vhost_user.socket"),
    Bad("vhost-user-e1000", [(("network", 0, "type"), "e1000"),
                             (("network", 0, "vhost_user"), {"socket": "/run/vhu.sock"})],
        "network[0].vhost_user"),
    Bad("pqc-tunnel-no-pqc", [(("network", 0, "pqc_tunnel"), True)], "network[0].pqc_tunnel"),
    Bad("nic-pqc-kem-unknown", [(("network", 0, "pqc_kem"), "Kyber768")], "network[0].pqc_kem"),
    Bad("nic-offload-string", [(("network", 0, "offload"), {"tso": "on"})],
        "network[0].offload.tso"),
    Bad("console-type", [(("console", "type"), "virtio-serial")], "console.type"),
    Bad("console-log-relative", [(("console", "log"), "console.log")], "console.log"),
    Bad("graphics-type-vga", [(("graphics", "type"), "vga")], "graphics.type"),
    Bad("virgl-without-gpu", [(("graphics", "virgl"), True)], "graphics.virgl"),
    Bad("vnc-without-gpu", [(("graphics", "vnc"), {})], "graphics.vnc"),
    Bad("vnc-password-9", [GPU, (("graphics", "vnc"), {"password": "123456789"})],
        "graphics.vnc.password"),
    Bad("vnc-port-80", [GPU, (("graphics", "vnc"), {"port": 80})], "graphics.vnc.port"),
    Bad("vnc-listen-hostname", [GPU, (("graphics", "vnc"), {"listen": "localhost"})],
        "graphics.vnc.listen"),
    Bad("usb-9", [(("usb",), [{"vendor_id": "0x046d", "product_id": f"0x{i:04x}"}
                              for i in range(9)])], "usb"),
    Bad("usb-vendor-no-0x", [(("usb",), [{"vendor_id": "046d", "product_id": "0xc52b"}])],
        "usb[0].vendor_id"),
    Bad("usb-product-missing", [(("usb",), [{"vendor_id": "0x046d"}])], "usb[0].product_id"),
    Bad("usb-bus-0", [(("usb",), [{"vendor_id": "0x046d", "product_id": "0xc52b", "bus": 0}])],
        "usb[0].bus"),
    Bad("boot-order-floppy", [(("boot", "order"), ["floppy"])], "boot.order[0]"),
    Bad("boot-order-duplicate", [(("boot", "order"), ["disk", "disk"])], "boot.order[1]"),
    Bad("boot-order-empty", [(("boot", "order"), [])], "boot.order"),
    Bad("boot-network-no-nic", [(("network",), []), (("boot", "order"), ["network"])],
        "boot.order"),
    Bad("secure-boot-no-uefi", [(("boot", "secure_boot"), True)], "boot.secure_boot"),
    Bad("boot-kernel-relative", [(("boot", "kernel"), "vmlinuz")], "boot.kernel"),
    Bad("boot-initrd-no-kernel", [(("boot", "initrd"), "/boot/initrd.img")], "boot.initrd"),
    Bad("pqc-backend-gpu", [(("pqc", "backend"), "gpu")], "pqc.backend"),
    Bad("pqc-attestation-alg", [(("pqc", "attestation"), {"algorithm": "ML-DSA-99"})],
        "pqc.attestation.algorithm"),
    Bad("attestation-no-pqc", [(("pqc", "attestation"), {"enabled": True})],
        "pqc.attestation.enabled"),
    Bad("storage-encryption-aead", [(("pqc", "storage_encryption"), {"aead": "AES-128-GCM"})],
        "pqc.storage_encryption.aead"),
    Bad("migration-downtime-0", [(("migration", "max_downtime_ms"), 0)],
        "migration.max_downtime_ms"),
    Bad("migration-bandwidth-word", [(("migration", "bandwidth"), "fast")],
        "migration.bandwidth"),
    Bad("sev-es-without-sev", [(("security", "sev"), {"es": True})], "security.sev.es"),
    Bad("sev-snp-without-sev", [(("security", "sev"), {"snp": True})], "security.sev.snp"),
    Bad("sev-policy-negative", [(("security", "sev"), {"enabled": True, "policy": -1})],
        "security.sev.policy"),
    Bad("sev-and-tdx", [(("security",), {"sev": {"enabled": True}, "tdx": {"enabled": True}})],
        "security.tdx.enabled"),
    Bad("tdx-enabled-string", [(("security", "tdx"), {"enabled": "true"})],
        "security.tdx.enabled"),
]


FULL: dict[str, Any] = {
    "name": "full.vm_1",
    "description": "every section used",
    "uuid": "0F8FAD5B-D9CB-469F-A165-70867728950E",
    "cpu": {"count": 8, "model": "Icelake-Server", "features": ["+aes", "-avx512f"],
            "topology": {"sockets": 2, "cores": 2, "threads": 2}, "pin": {"0": 0, "7": 1},
            "weight": 512, "cap": 50, "numa_node": 0},
    "memory": {"size": "4G", "hugepages": "2M", "balloon": True, "max_size": "8G",
               "prealloc": False, "encrypted": True},
    "storage": [
        {"type": "virtio-blk", "path": "/img/root.img", "format": "encrypted", "readonly": False,
         "media": "disk", "boot_index": 0, "cache": "directsync", "io": "native", "queues": 4,
         "discard": True, "io_limit": "500M", "iops_limit": 20000,
         "encrypted": {"kem": "ML-KEM-512"}},
        {"type": "ahci", "path": "/img/install.iso", "media": "cdrom", "boot_index": 1},
        {"type": "nvme", "path": "/dev/sdb", "format": "raw", "cache": "none", "io": "native"},
    ],
    "network": [
        {"type": "virtio-net", "network": "br0", "mac": "52:54:00:AB:cd:01", "queues": 4,
         "vhost": True, "mtu": 9000, "vlan": 100,
         "offload": {"tso": False, "gso": True, "gro": False, "csum": True},
         "pqc_tunnel": True, "pqc_kem": "ML-KEM-1024", "pqc_aead": "ChaCha20-Poly1305"},
        {"type": "virtio-net", "network": "dpdk0",
         "vhost_user": {"socket": "/run/vhu0.sock", "server": True}},
        {"type": "e1000e", "network": "mgmt"},
    ],
    "console": {"type": "serial", "log": "/var/log/full.log"},
    "graphics": {"type": "virtio-gpu", "virgl": True,
                 "vnc": {"listen": "::1", "port": 5901, "password": "s3cret!", "websocket": True}},
    "usb": [{"vendor_id": "0x046d", "product_id": "0xC52B", "bus": 1, "port": 2}],
    "boot": {"order": ["cdrom", "disk", "network"], "uefi": True, "secure_boot": True,
             "kernel": "/boot/vmlinuz", "initrd": "/boot/initrd.img", "cmdline": "console=ttyS0"},
    "pqc": {"enabled": True, "backend": "software",
            "attestation": {"enabled": True, "algorithm": "ML-DSA-44"},
            "storage_encryption": {"enabled": True, "kem": "ML-KEM-768", "aead": "AES-256-GCM"}},
    "migration": {"allowed": False, "max_downtime_ms": 50, "bandwidth": "10G", "compress": True,
                  "auto_converge": True},
    "security": {"sev": {"enabled": False}, "tdx": {"enabled": True}},
}

GOOD: dict[str, Any] = {
    "base": BASE,
    "full": FULL,
    "topology-derived-cores": apply(BASE, [(("cpu", "topology"), {"sockets": 2})]),
    "count-200-no-topology": apply(BASE, [(("cpu", "count"), 200)]),
    "sev-snp": apply(BASE, [(("security", "sev"), {"enabled": True, "es": True, "snp": True,
                                                   "policy": 196608}),
                            (("memory", "encrypted"), True)]),
    "memory-bounds": apply(BASE, [(("memory",), {"size": "128M", "max_size": "4T"})]),
    "hugepages-1g": apply(BASE, [(("memory",), {"size": "2G", "hugepages": "1G"})]),
    "cdrom-implied-readonly": apply(BASE, [(("storage", 0, "media"), "cdrom")]),
    "no-network": apply(BASE, [(("network",), DELETE)]),
    **{name: example(name) for name in EXAMPLE_NAMES},
}
