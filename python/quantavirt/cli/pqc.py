"""``quantavirt pqc info [--json]``: which PQC backend ``auto`` picks, which code path
(portable, AVX2, AVX-512, card) serves each algorithm, the QUAC 100 devices that answer and
whether liboqs is present."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from quantavirt._ffi import c_string, lib

KEMS = ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024")
SIGS = ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87")
_PATH_NAMES = {"portable": "portable", "avx2": "AVX2", "avx512": "AVX-512", "avx-512": "AVX-512",
               "avx512vl": "AVX-512", "avx2+avx512": "AVX-512"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("pqc", help="post-quantum cryptography backends")
    sub = p.add_subparsers(dest="pqc_command", metavar="WHAT")
    info = sub.add_parser("info", help="backends, code paths, QUAC 100 cards, liboqs")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=run_info)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def collect() -> dict[str, Any]:
    """Everything `pqc info` reports, as plain data."""
    from quantavirt.pqc.backend import DEVICE_ENV, auto_backend, liboqs_location, quac100_devices

    auto = auto_backend()
    devices = quac100_devices()
    kem_path = c_string(lib.qv_mlkem_code_path())
    sig_path = c_string(lib.qv_mldsa_code_path())
    algorithms = []
    for name in KEMS + SIGS:
        software = _PATH_NAMES.get(kem_path if name in KEMS else sig_path,
                                   kem_path if name in KEMS else sig_path)
        algorithms.append({
            "algorithm": name,
            "family": "kem" if name in KEMS else "signature",
            "backend": auto,
            "code_path": "card" if auto == "quac100" else software,
            "software_code_path": software,
        })
    flags = _cpu_flags()
    library = liboqs_location()
    return {
        "auto_backend": auto,
        "algorithms": algorithms,
        "cpu": {"avx2": "avx2" in flags, "avx512": "avx512f" in flags},
        "quac100": {
            "device_env": os.environ.get(DEVICE_ENV) or None,
            "devices": [d.to_dict() for d in devices],
        },
        "liboqs": {"present": library is not None, "library": library},
    }


def run_info(args: argparse.Namespace) -> int:
    data = collect()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"auto backend: {data['auto_backend']}")
    cpu = data["cpu"]
    print(f"CPU: AVX2 {'yes' if cpu['avx2'] else 'no'}, AVX-512 "
          f"{'yes' if cpu['avx512'] else 'no'}")
    print(f"{'algorithm':<12} {'backend':<9} {'code path':<10} software path")
    for a in data["algorithms"]:
        print(f"{a['algorithm']:<12} {a['backend']:<9} {a['code_path']:<10} "
              f"{a['software_code_path']}")
    devices = data["quac100"]["devices"]
    if not devices:
        print("QUAC 100: no device answers")
    for d in devices:
        kind = "simulator" if d["simulator"] else "card"
        print(f"QUAC 100 {d['path']}: {d['device_name']} ({kind}), serial {d['serial_number']}, "
              f"firmware {d['firmware']}, interface {d['interface_version']:#010x}, "
              f"capabilities {d['capabilities']:#010x}, max batch {d['max_batch_size']}")
    lo = data["liboqs"]
    print(f"liboqs: {lo['library'] if lo['present'] else 'not found'}")
    return 0
