"""How long the loaders take: the stock Debian kernel into guest memory, ACPI tables, CPUID.
Run: .venv/bin/python -m pytest benchmarks/boot --benchmark-only"""

from __future__ import annotations

from pathlib import Path

from quantavirt import boot

MIB = 1 << 20


def test_load_stock_bzimage(benchmark, stock_kernel: Path) -> None:  # noqa: ANN001
    layout = boot.memory_layout(256 * MIB)
    mem = bytearray(256 * MIB)
    st = benchmark(boot.load_kernel, mem, layout, stock_kernel, None, "console=ttyS0")
    assert st.rip == st.kernel_start + 0x200


def test_build_acpi_64_cpus(benchmark) -> None:  # noqa: ANN001
    layout = boot.memory_layout(256 * MIB)
    mem = bytearray(2 * MIB)  # the tables live below 1 MiB
    used = benchmark(boot.build_acpi, mem, layout, 64)
    assert used > 64 * 8
