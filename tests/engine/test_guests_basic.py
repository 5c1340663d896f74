"""Freestanding guests: entry modes, serial output, results and the debug-exit port."""

from __future__ import annotations

import pytest

from quantavirt.engine import run_flat

pytestmark = pytest.mark.kvm


def test_real_mode_entry_serial_and_debug_exit(guest):
    g = guest("real_hello")
    r = run_flat(g.binary, g.load, g.mode)
    assert r.exit.reason == "debug-exit"
    assert r.exit.status == 42
    assert r.console == b"hello from real mode\n"
    assert r.stats.results == [0x12345678]
    assert r.stats.console_bytes == len(r.console)
    assert r.stats.pio_exits >= len(r.console) + 2


def test_long_mode_entry(guest):
    g = guest("long_hello")
    r = run_flat(g.binary, g.load, g.mode)
    assert r.exit.reason == "debug-exit", r.exit
    assert r.exit.status == 7
    assert r.console == b"hello from long mode\n"
    assert r.stats.results == [1, 1]  # CR0.PG, EFER.LMA
