"""The VM configuration, field by field (schema rev 1.0), in the schema's own order.

Every type, range, enum, default and the cross-field rules JSON Schema can express live here;
the validator (validate.py) and the exported JSON Schema (schema_export.py) both read it.
Rules beyond JSON Schema are in cross_rules.py, host-dependent ones in host_rules.py.
"""

from __future__ import annotations

import difflib
import ipaddress
from typing import Any

from quantavirt.config.conditions import AnyOf, Contains, Implies, Is, NonEmpty, Present, Requires
from quantavirt.config.cpu_models import KNOWN_CPUID_FLAGS, MODEL_NAMES
from quantavirt.config.fields import (
    FILL,
    INVALID,
    Arr,
    Bool,
    Enum,
    Field,
    Int,
    Map,
    Node,
    Obj,
    OneOf,
    Path,
    Pattern,
    Problems,
    Size,
    Str,
    show,
)
from quantavirt.config.sizes import parse_size

SCHEMA_VERSION = "1.0"

KEMS = ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024")
AEADS = ("AES-256-GCM", "ChaCha20-Poly1305")
SIGNATURES = ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87")
DEFAULT_KEM = "ML-KEM-768"
DEFAULT_AEAD = "AES-256-GCM"

MEMORY_MIN = parse_size("128M")
MEMORY_MAX = parse_size("4T")
MAX_PCPU = 8191  # Linux's largest NR_CPUS is 8192
MAX_NUMA_NODE = 1023  # Linux's largest MAX_NUMNODES is 1024
PATH_MAX = 4095

NAME_PATTERN = Pattern(r"^[a-zA-Z0-9._-]{1,64}$",
                       "must be 1-64 characters of letters, digits, '.', '_' and '-'")
UUID4_PATTERN = Pattern(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$",
    "is not an RFC 4122 UUID version 4 (xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx)")
ABS_PATH_PATTERN = Pattern(r"^/[^\x00]*$", "must be an absolute path (start with '/', no NUL)")
MAC_PATTERNS = (
    Pattern(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$",
            "is not a MAC address (six hex pairs separated by ':')"),
    Pattern(r"^[0-9a-fA-F][02468aceACE].*$",
            "is a multicast address (low bit of the first octet set); a NIC needs unicast"),
    Pattern(r"^(?!00:00:00:00:00:00$).*$", "is the all-zero address"),
)
USB_ID_PATTERN = Pattern(r"^0x[0-9a-fA-F]{4}$", 'must be a 16-bit hex id such as "0x046d"')
PIN_KEY_PATTERN = Pattern(r"^(0|[1-9][0-9]{0,2})$",
                          "must be a vCPU index (decimal, no sign or leading zeros)")
FEATURE_PATTERN = Pattern(
    "^[+-](" + "|".join(sorted(KNOWN_CPUID_FLAGS)) + ")$",
    "must be \"+flag\" or \"-flag\" with a known CPUID flag")


class FeatureFlag(Str):
    """A "+flag"/"-flag" CPUID override; unknown flag names get a did-you-mean hint."""

    def __init__(self) -> None:
        super().__init__(patterns=[FEATURE_PATTERN])

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if isinstance(value, str) and value[:1] in ("+", "-") and \
                value[1:] not in KNOWN_CPUID_FLAGS:
            hint = difflib.get_close_matches(value[1:], sorted(KNOWN_CPUID_FLAGS), n=1)
            more = f" (did you mean {show(value[0] + hint[0])}?)" if hint else ""
            out.inval(path, f"{show(value)}: unknown CPUID flag {show(value[1:])}{more}",
                      "pattern")
            return INVALID
        if isinstance(value, str) and value[:1] not in ("+", "-"):
            out.inval(path, f"{show(value)} must start with '+' (add) or '-' (remove)",
                      "pattern")
            return INVALID
        return super().check(value, path, out)


class IpAddress(Str):
    """An IPv4 or IPv6 address (JSON Schema formats ipv4/ipv6)."""

    def check(self, value: Any, path: Path, out: Problems) -> Any:
        if not isinstance(value, str):
            return self._type_error(value, path, out, "an IP address string")
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            address = None
        if address is None or "%" in value:
            out.inval(path, f"{show(value)} is not an IPv4 or IPv6 address", "format")
            return INVALID
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}


def _path_str() -> Str:
    return Str(max_len=PATH_MAX, patterns=[ABS_PATH_PATTERN])


NAME = Str(patterns=[NAME_PATTERN], forbid=(".", ".."))

TOPOLOGY = Obj(
    Field("sockets", Int(1, 8), default=1, doc="CPU sockets"),
    Field("cores", Int(1, 128), doc="Cores per socket",
          default_doc="count / (sockets × threads)"),
    Field("threads", Int(1, 2), default=1, doc="Threads per core (SMT)"),
    doc="vCPU topology exposed via CPUID 0x1F; sockets × cores × threads must equal count",
)

CPU = Obj(
    Field("count", Int(1, 256), required=True, doc="Number of virtual CPUs"),
    Field("model", Enum(*MODEL_NAMES), default="host",
          doc='"host" = full CPUID passthrough; a named model masks CPUID to its baseline'),
    Field("features", Arr(FeatureFlag(), max_items=256, unique=True, what="features"),
          default=[], doc='CPUID feature overrides, e.g. ["+aes", "-avx512f"]'),
    Field("topology", TOPOLOGY, doc="vCPU topology",
          default_doc="1 socket, count cores, 1 thread (more sockets when count > 128)"),
    Field("pin", Map(PIN_KEY_PATTERN, Int(0, MAX_PCPU)), doc="vCPU -> pCPU pinning map",
          default_doc="none (vCPUs float)"),
    Field("weight", Int(1, 65535), default=256, doc="Scheduler weight"),
    Field("cap", Int(0, 100), default=0, doc="Max % of one pCPU per vCPU (0 = no cap)"),
    Field("numa_node", Int(0, MAX_NUMA_NODE), doc="Preferred NUMA node", default_doc="auto"),
)

MEMORY = Obj(
    Field("size", Size(MEMORY_MIN, MEMORY_MAX), required=True, doc='VM RAM size, "128M".."4T"'),
    Field("hugepages", OneOf(False, "2M", "1G", expected='false, "2M" or "1G"'), default=False,
          doc="Use hugepages for EPT/NPT backing"),
    Field("balloon", Bool(), default=False, doc="VirtIO memory balloon"),
    Field("max_size", Size(MEMORY_MIN, MEMORY_MAX), doc="Maximum memory for hot-add (>= size)",
          default_doc="= size"),
    Field("prealloc", Bool(), default=False, doc="Pre-allocate all memory at VM creation"),
    Field("encrypted", Bool(), default=False,
          doc="Hardware memory encryption; requires security.sev or security.tdx"),
)

DISK_ENCRYPTION = Obj(
    Field("kem", Enum(*KEMS), default=DEFAULT_KEM, doc="KEM wrapping the disk key"),
    Field("aead", Enum(*AEADS), default=DEFAULT_AEAD, doc="AEAD sealing the sectors"),
    doc='PQC disk encryption; only with format "encrypted" (defaults from '
        "pqc.storage_encryption)",
)

DISK = Obj(
    Field("type", Enum("virtio-blk", "nvme", "ahci", "ide"), default="virtio-blk",
          doc="Storage controller type"),
    Field("path", _path_str(), required=True, doc="Absolute path of a disk image or block device"),
    Field("format", Enum("raw", "qcow2", "encrypted"), doc="Disk image format",
          default_doc="auto-detect"),
    Field("readonly", Bool(), default=False, doc="Read-only disk (always true for a cdrom)"),
    Field("media", Enum("disk", "cdrom"), default="disk", doc="Media type"),
    Field("boot_index", Int(0, 99), doc="Boot priority (lower first)", default_doc="none"),
    Field("cache", Enum("none", "writeback", "writethrough", "directsync"), default="writeback",
          doc="Host cache mode"),
    Field("io", Enum("native", "threads"), default="threads",
          doc="I/O backend (native requires cache none or directsync)"),
    Field("queues", Int(1, 64), default=1, doc="Multi-queue count (virtio-blk only)"),
    Field("discard", Bool(), default=False, doc="Pass TRIM/UNMAP to the host (virtio-blk only)"),
    Field("io_limit", Size(1, 1 << 60), doc="Bandwidth limit in bytes/s", default_doc="unlimited"),
    Field("iops_limit", Int(1, 1_000_000), doc="I/O operations per second limit",
          default_doc="unlimited"),
    Field("encrypted", DISK_ENCRYPTION, doc="PQC disk encryption",
          default_doc='from pqc.storage_encryption when format is "encrypted", else none'),
    rules=[
        Implies("io-native-cache", Is(("io",), ("native",)),
                Is(("cache",), ("none", "directsync")), ("io",),
                lambda d: f"native AIO is incompatible with {d.get('cache', 'writeback')} cache"
                          " (use cache none or directsync)"),
        Implies("cdrom-readonly", Is(("media",), ("cdrom",)),
                Is(("readonly",), (True,), if_absent=True), ("readonly",),
                "a cdrom is always read-only; readonly cannot be false"),
        Implies("encrypted-needs-format", Present(("encrypted",)),
                Is(("format",), ("encrypted",)), ("encrypted",),
                'encryption settings are only meaningful with format "encrypted"'),
        Implies("disk-queues-virtio", Is(("type",), ("virtio-blk",), negate=True),
                Is(("queues",), (1,)), ("queues",),
                lambda d: f"multi-queue needs type virtio-blk, not {d.get('type')}"),
        Implies("disk-discard-virtio", Is(("type",), ("virtio-blk",), negate=True),
                Is(("discard",), (False,)), ("discard",),
                lambda d: f"discard needs type virtio-blk, not {d.get('type')}"),
    ],
)

VHOST_USER = Obj(
    Field("socket", _path_str(), required=True, doc="vhost-user Unix socket path"),
    Field("server", Bool(), default=False,
          doc="true = QuantaVirt creates the socket; false = connects to it"),
)

OFFLOAD = Obj(*(Field(name, Bool(), default=True, doc=doc) for name, doc in (
    ("tso", "TCP segmentation offload"), ("gso", "Generic segmentation offload"),
    ("gro", "Generic receive offload"), ("csum", "TCP/UDP checksum offload"))))

NIC = Obj(
    Field("type", Enum("virtio-net", "e1000", "e1000e"), default="virtio-net",
          doc="NIC device model"),
    Field("network", NAME, required=True, doc="Existing network name"),
    Field("mac", Str(patterns=MAC_PATTERNS), doc="Unicast MAC address",
          default_doc="52:54:00:xx:xx:xx derived from the VM's uuid and the NIC index"),
    Field("queues", Int(1, 16), default=1, doc="Multi-queue (virtio-net only)"),
    Field("vhost", Bool(), default=True, doc="vhost-net kernel acceleration"),
    Field("vhost_user", VHOST_USER, doc="vhost-user socket for DPDK", default_doc="none"),
    Field("mtu", Int(576, 9000), default=1500, doc="Maximum transmission unit"),
    Field("vlan", Int(1, 4094), doc="802.1Q VLAN tag", default_doc="none"),
    Field("offload", OFFLOAD, default=FILL, doc="Offload feature toggles"),
    Field("pqc_tunnel", Bool(), default=False,
          doc="Encrypt this NIC's traffic with PQC (needs pqc.enabled)"),
    Field("pqc_kem", Enum(*KEMS), default=DEFAULT_KEM, doc="KEM for tunnel key exchange"),
    Field("pqc_aead", Enum(*AEADS), default=DEFAULT_AEAD, doc="Bulk cipher of the tunnel"),
    rules=[
        Implies("nic-queues-virtio", Is(("type",), ("virtio-net",), negate=True),
                Is(("queues",), (1,)), ("queues",),
                lambda d: f"multi-queue needs type virtio-net, not {d.get('type')}"),
        Implies("vhost-user-virtio", Present(("vhost_user",)), Is(("type",), ("virtio-net",)),
                ("vhost_user",), lambda d: f"vhost-user needs type virtio-net, not "
                                           f"{d.get('type')}"),
    ],
)

CONSOLE = Obj(
    Field("type", Enum("virtio-console", "serial"), default="virtio-console",
          doc="Console device type"),
    Field("log", _path_str(), doc="Log console output to this file", default_doc="none"),
)

VNC = Obj(
    Field("listen", IpAddress(), default="127.0.0.1", doc="VNC bind address"),
    Field("port", Int(1024, 65535), default=5900, doc="VNC listen port"),
    Field("password", Str(min_len=1, max_len=8), doc="VNC password (at most 8 characters)",
          default_doc="none"),
    Field("websocket", Bool(), default=False, doc="WebSocket transport"),
)

GRAPHICS = Obj(
    Field("type", Enum("virtio-gpu", "none"), default="none", doc="GPU device type"),
    Field("virgl", Bool(), default=False, doc="Virgl 3D acceleration (needs virtio-gpu)"),
    Field("vnc", VNC, doc="VNC remote display (needs virtio-gpu)", default_doc="none"),
    rules=[
        Implies("virgl-needs-gpu", Is(("virgl",), (True,)), Is(("type",), ("virtio-gpu",)),
                ("virgl",), "virgl needs graphics type virtio-gpu"),
        Implies("vnc-needs-gpu", Present(("vnc",)), Is(("type",), ("virtio-gpu",)),
                ("vnc",), "a VNC display needs graphics type virtio-gpu"),
    ],
)

USB_DEVICE = Obj(
    Field("vendor_id", Str(patterns=[USB_ID_PATTERN]), required=True, doc="USB vendor id"),
    Field("product_id", Str(patterns=[USB_ID_PATTERN]), required=True, doc="USB product id"),
    Field("bus", Int(1, 255), doc="Host USB bus number", default_doc="any"),
    Field("port", Int(1, 255), doc="Host USB port number", default_doc="any"),
)

BOOT = Obj(
    Field("order", Arr(Enum("disk", "cdrom", "network"), min_items=1, max_items=3, unique=True,
                       what="boot devices", empty="boot order is empty"),
          default=["disk", "cdrom"], doc="Boot device priority"),
    Field("uefi", Bool(), default=False, doc="true = OVMF/UEFI; false = SeaBIOS"),
    Field("secure_boot", Bool(), default=False, doc="UEFI Secure Boot (requires uefi)"),
    Field("kernel", _path_str(), doc="Direct kernel boot: vmlinuz path", default_doc="none"),
    Field("initrd", _path_str(), doc="Direct kernel boot: initramfs path", default_doc="none"),
    Field("cmdline", Str(max_len=2048, patterns=[Pattern(r"^[^\x00]*$", "contains a NUL")]),
          doc="Direct kernel boot: kernel command line", default_doc="none"),
    rules=[
        Implies("secure-boot-uefi", Is(("secure_boot",), (True,)), Is(("uefi",), (True,)),
                ("secure_boot",), "secure_boot requires UEFI firmware (set boot.uefi to true)"),
        Requires("initrd-needs-kernel", "initrd", "kernel"),
        Requires("cmdline-needs-kernel", "cmdline", "kernel"),
    ],
)

PQC = Obj(
    Field("enabled", Bool(), default=False, doc="Enable the PQC subsystem for this VM"),
    Field("backend", Enum("auto", "quac100", "software"), default="auto",
          doc="auto = QUAC 100 if available, else software"),
    Field("attestation", Obj(
        Field("enabled", Bool(), default=False, doc="Boot-time attestation"),
        Field("algorithm", Enum(*SIGNATURES), default="ML-DSA-65",
              doc="Signature algorithm of attestation reports"),
    ), default=FILL, doc="VM attestation"),
    Field("storage_encryption", Obj(
        Field("enabled", Bool(), default=False, doc="Encrypt all disks by default"),
        Field("kem", Enum(*KEMS), default=DEFAULT_KEM, doc="KEM for disk key wrapping"),
        Field("aead", Enum(*AEADS), default=DEFAULT_AEAD, doc="AEAD for sector encryption"),
    ), default=FILL, doc="PQC storage encryption defaults for this VM"),
    rules=[
        Implies("attestation-needs-pqc", Is(("attestation", "enabled"), (True,)),
                Is(("enabled",), (True,)), ("attestation", "enabled"),
                "attestation needs the PQC subsystem (set pqc.enabled to true)"),
        Implies("storage-encryption-needs-pqc", Is(("storage_encryption", "enabled"), (True,)),
                Is(("enabled",), (True,)), ("storage_encryption", "enabled"),
                "storage encryption needs the PQC subsystem (set pqc.enabled to true)"),
    ],
)

MIGRATION = Obj(
    Field("allowed", Bool(), default=True, doc="Allow this VM to be migrated"),
    Field("max_downtime_ms", Int(1, 10000), default=300, doc="Maximum acceptable downtime (ms)"),
    Field("bandwidth", Size(1, 1 << 60), default="1G", doc="Maximum migration bandwidth"),
    Field("compress", Bool(), default=False, doc="Page compression during transfer"),
    Field("auto_converge", Bool(), default=False, doc="Throttle the guest if it dirties "
                                                      "memory faster than the transfer rate"),
)

SEV = Obj(
    Field("enabled", Bool(), default=False, doc="AMD SEV memory encryption"),
    Field("policy", Int(0, (1 << 64) - 1), default=0, doc="SEV guest policy bitmask"),
    Field("es", Bool(), default=False, doc="SEV-ES (encrypted register state; EPYC 7002+)"),
    Field("snp", Bool(), default=False, doc="SEV-SNP (integrity + attestation; EPYC 7003+)"),
    rules=[
        Implies("sev-es-needs-sev", Is(("es",), (True,)), Is(("enabled",), (True,)), ("es",),
                "SEV-ES needs security.sev.enabled"),
        Implies("sev-snp-needs-sev", Is(("snp",), (True,)), Is(("enabled",), (True,)),
                ("snp",), "SEV-SNP needs security.sev.enabled"),
    ],
)

SECURITY = Obj(
    Field("sev", SEV, default=FILL, doc="AMD SEV configuration"),
    Field("tdx", Obj(Field("enabled", Bool(), default=False, doc="Intel TDX trust domain")),
          default=FILL, doc="Intel TDX configuration"),
    rules=[
        Implies("sev-xor-tdx", Is(("sev", "enabled"), (True,)),
                Is(("tdx", "enabled"), (True,), negate=True), ("tdx", "enabled"),
                "SEV and TDX cannot both be enabled"),
    ],
)

VM = Obj(
    Field("name", NAME, required=True, doc="Unique VM name"),
    Field("description", Str(max_len=512), default="", doc="Human-readable description"),
    Field("uuid", Str(patterns=[UUID4_PATTERN]), doc="UUID v4",
          default_doc="generated (UUID v4)"),
    Field("cpu", CPU, required=True, doc="vCPU configuration"),
    Field("memory", MEMORY, required=True, doc="RAM configuration"),
    Field("storage", Arr(DISK, min_items=1, max_items=64, what="storage devices",
                         empty="no storage devices configured"),
          required=True, doc="Disk devices"),
    Field("network", Arr(NIC, max_items=16, what="NICs"), default=[], doc="NICs"),
    Field("console", CONSOLE, default=FILL, doc="Serial / virtio console"),
    Field("graphics", GRAPHICS, default=FILL, doc="Display adapter and VNC"),
    Field("usb", Arr(USB_DEVICE, max_items=8, unique=True, what="USB devices"), default=[],
          doc="USB host device passthrough"),
    Field("boot", BOOT, default=FILL, doc="Boot order, firmware, direct kernel boot"),
    Field("pqc", PQC, default=FILL, doc="Post-quantum cryptography settings"),
    Field("migration", MIGRATION, default=FILL, doc="Live migration policy"),
    Field("security", SECURITY, default=FILL, doc="SEV-SNP / TDX"),
    rules=[
        Implies("memory-encryption-needs-cc", Is(("memory", "encrypted"), (True,)),
                AnyOf((Is(("security", "sev", "enabled"), (True,)),
                       Is(("security", "tdx", "enabled"), (True,)))),
                ("memory", "encrypted"),
                "memory encryption needs security.sev.enabled or security.tdx.enabled"),
        Implies("encrypted-disk-needs-pqc", Is(("format",), ("encrypted",)),
                Is(("pqc", "enabled"), (True,)), ("format",),
                'format "encrypted" needs the PQC subsystem (set pqc.enabled to true)',
                each=("storage",)),
        Implies("pqc-tunnel-needs-pqc", Is(("pqc_tunnel",), (True,)),
                Is(("pqc", "enabled"), (True,)), ("pqc_tunnel",),
                "a PQC tunnel needs the PQC subsystem (set pqc.enabled to true)",
                each=("network",)),
        Implies("boot-network-needs-nic", Contains(("boot", "order"), Is((), ("network",))),
                NonEmpty(("network",)), ("boot", "order"),
                'boot order lists "network" but the VM has no NIC'),
    ],
    doc=f"QuantaVirt VM configuration, schema {SCHEMA_VERSION}",
)

__all__ = ["VM", "Node", "SCHEMA_VERSION"]
