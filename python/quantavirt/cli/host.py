"""`quantavirt host info [--json]`: what this host offers QuantaVirt (KVM backend and
capabilities, vCPU limits, hugepage pools, CPU, confidential computing, devices)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from quantavirt.host import HostInfo, probe


def _to_json(info: HostInfo) -> dict[str, object]:
    d = asdict(info)
    d["cpu_flags"] = sorted(info.cpu_flags)
    d["kvm_cpuid_flags"] = sorted(info.kvm_cpuid_flags)
    d["networks"] = sorted(info.networks)
    return d


def _print_text(info: HostInfo) -> None:
    kvm = (f"yes (API {info.kvm_api_version}, {info.kvm_device})" if info.kvm_available
           else f"no: {info.kvm_error}")
    print(f"KVM:              {kvm}")
    print(f"KVM backend:      {info.kvm_backend} (modules: {', '.join(info.kvm_modules) or '-'})")
    if info.kvm_available:
        print(f"vCPUs:            recommended {info.recommended_vcpus}, max {info.max_vcpus}")
        caps = ", ".join(f"{k}={v}" for k, v in sorted(info.kvm_capabilities.items()))
        print(f"Capabilities:     {caps}")
    if info.guest_cmdline_adaptations:
        print("Guest adaptations: the backend emulates guest code; Linux guests get "
              f"'{' '.join(info.guest_cmdline_adaptations)}' and the completion fallback")
    virt = " ".join(f for f in ("vmx", "svm") if f in info.cpu_flags) or "no vmx/svm"
    print(f"CPU:              {info.cpu_vendor}, {len(info.cpu_flags)} flags ({virt})")
    models = (", ".join(info.cpu_models) or "none of the named models") \
        if info.cpu_models_known else "unknown (KVM not usable)"
    print(f"CPU models:       host, {models}" if info.cpu_models_known
          else f"CPU models:       {models}")
    print(f"Memory:           {info.host_memory >> 20} MiB")
    for size, pool in sorted(info.hugepages.items()):
        print(f"Hugepages {size}:     {pool.free} free of {pool.total}")
    print(f"SEV/SEV-ES/SNP:   {info.sev}/{info.sev_es}/{info.sev_snp}   TDX: {info.tdx}")
    print(f"tun: {info.tun}   vhost-net: {info.vhost_net}   "
          f"QUAC 100: {', '.join(info.quac100_devices) or 'none'}")


def _info(args: argparse.Namespace) -> int:
    info = probe(args.kvm_device)
    if args.json:
        print(json.dumps(_to_json(info), indent=2, sort_keys=True))
    else:
        _print_text(info)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("host", help="show what this host can do")
    sub = p.add_subparsers(dest="host_command", metavar="SUBCOMMAND")
    info = sub.add_parser("info", help="KVM, CPU, hugepages, confidential computing, devices")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--kvm-device", default=None, help="KVM device (default /dev/kvm)")
    info.set_defaults(handler=_info)
