"""The boot state as KVM register structs: segment caches decoded from the GDT the loader
wrote, for both entry modes (built as a small C program; no /dev/kvm needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kvmstate") / "check"
    sources = [*sorted((ROOT / "csrc" / "boot").glob("*.c")), ROOT / "csrc" / "core" / "errors.c"]
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
                    "-fsanitize=address,undefined", "-I", str(ROOT / "csrc" / "include"),
                    "-I", str(ROOT / "csrc"), "-o", str(out),
                    str(Path(__file__).with_name("kvm_state_check.c")), *map(str, sources)],
                   check=True)
    return out


def run(checker: Path, kernel: Path) -> dict[str, dict[str, int]]:
    res = subprocess.run([str(checker), str(kernel)], capture_output=True, text=True,
                         check=True)
    out: dict[str, dict[str, int]] = {}
    for line in res.stdout.splitlines():
        if line.startswith("bad="):
            out["bad"] = {str(i): int(v) for i, v in enumerate(line[4:].split(","))}
            continue
        name, *fields = line.split()
        if "=" in name:  # lines without a leading name
            fields, name = [name, *fields], name.split("=")[0]
        out[name] = {k: int(v, 16) for k, v in (f.split("=") for f in fields)}
    return out


def test_long_mode_state(checker: Path, stock_kernel: Path) -> None:
    s = run(checker, stock_kernel)
    cs, ds, tr = s["cs"], s["ds"], s["tr"]
    assert (cs["sel"], cs["l"], cs["db"], cs["s"], cs["present"], cs["type"]) == (
        0x10, 1, 0, 1, 1, 0xB)
    assert (ds["sel"], ds["type"], ds["db"], ds["limit"], ds["base"]) == (
        0x18, 0x3, 1, 0xFFFFFFFF, 0)
    assert s["ss"] == ds
    assert (tr["sel"], tr["type"], tr["s"], tr["present"], tr["limit"]) == (0x20, 0xB, 0, 1, 0x67)
    assert s["ldt"]["unusable"] == 1
    assert s["cr0"]["cr0"] & 0x80000001 == 0x80000001 and s["cr0"]["efer"] == 0x500
    assert s["rip"]["rip"] == 0x1000200 and s["rip"]["rsi"] == 0x7000
    assert s["bad"] == {"0": -1, "1": -1, "2": -1}


def test_pvh_state(checker: Path, pvh_elf: Path) -> None:
    s = run(checker, pvh_elf)
    cs = s["cs"]
    assert (cs["sel"], cs["l"], cs["db"], cs["g"], cs["limit"], cs["type"]) == (
        0x08, 0, 1, 1, 0xFFFFFFFF, 0xB)
    assert s["cr0"]["cr0"] == 0x11 and s["cr0"]["efer"] == 0
    assert s["rip"]["rbx"] == 0x8000
