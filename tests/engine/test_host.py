"""The host probe and `quantavirt host info`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from quantavirt.host import EMULATING_BACKEND_CMDLINE, kvm_backend, probe


def test_backend_detection_rules():
    assert kvm_backend(("kvm_intel", "kvm"), frozenset({"vmx", "lm"})) == "hardware"
    assert kvm_backend(("kvm_amd", "kvm"), frozenset({"svm"})) == "hardware"
    assert kvm_backend(("kvm_pvm", "kvm"), frozenset({"lm"})) == "emulating"
    # kvm_amd loaded but no SVM flag exposed (nested host without it): not hardware
    assert kvm_backend(("kvm_amd", "kvm_pvm"), frozenset()) == "emulating"
    assert kvm_backend((), frozenset({"vmx"})) == "none"


@pytest.mark.kvm
def test_probe_reports_this_host():
    info = probe()
    assert info.kvm_available and info.kvm_api_version == 12
    assert info.kvm_capabilities["IRQCHIP"] > 0 and info.kvm_capabilities["USER_MEMORY"] > 0
    assert info.max_vcpus >= info.recommended_vcpus >= 1
    assert len(info.cpu_vendor) == 12 and info.cpu_vendor.isprintable()
    assert "lm" in info.cpu_flags
    modules = {m for m in ("kvm_intel", "kvm_amd", "kvm_pvm")
               if Path(f"/sys/module/{m}").exists()}
    assert set(info.kvm_modules) & {"kvm_intel", "kvm_amd", "kvm_pvm"} == modules
    assert info.kvm_backend in ("hardware", "emulating")
    expected = EMULATING_BACKEND_CMDLINE if info.kvm_backend == "emulating" else ()
    assert info.guest_cmdline_adaptations == expected
    for size, pool in info.hugepages.items():
        assert size in ("2M", "1G") and 0 <= pool.free <= pool.total


def test_host_info_json_and_text(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "quantavirt", "host", "info", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    for key in ("kvm_available", "kvm_backend", "kvm_capabilities", "max_vcpus", "hugepages",
                "cpu_vendor", "cpu_flags", "sev", "sev_snp", "tdx", "vhost_net", "tun",
                "quac100_devices", "guest_cmdline_adaptations"):
        assert key in data
    r = subprocess.run([sys.executable, "-m", "quantavirt", "host", "info", "--kvm-device",
                        str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "KVM:              no:" in r.stdout and "modprobe" in r.stdout
