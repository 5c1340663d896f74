"""The completion fallback, checked by freestanding guests that execute each instruction it
handles and report the architectural results. The results must be right on any backend; on
an emulating backend every emulation failure must have been completed by the fallback, on
hardware KVM it never triggers."""

from __future__ import annotations

import pytest

from quantavirt.engine import run_flat

pytestmark = pytest.mark.kvm

INSNS64_EXPECTED = [
    1, 1,                      # int3: #BP handler ran once, returned after the int3
    1, 0,                      # stac, clac
    32, 0, 3, 0xFFFF0008,      # popcnt r64; r32 (zero-extends); r16 (keeps upper bits)
    17, 5,                     # popcnt m64 RIP-relative; SIB + disp8
    1, 0,                      # popcnt of 0: ZF set, result 0
    0x9B,                      # fwait
    0x7F80, 0x7F80,            # ldmxcsr -> stmxcsr, and FXSAVE sees it
    0x1FA0, 0x11223344, 0xDEADBEEF, 0xCAFEF00D,  # fxrstor64 -> fxsave64 (MXCSR, XMM0, XMM15)
    1, 3, 4,                   # lock cmpxchg16b equal: ZF, new memory
    0, 3, 4,                   # cmpxchg16b unequal: ZF clear, RDX:RAX loaded
    1, 30, 40,                 # cmpxchg8b equal
    1,                         # xgetbv(0): XCR0.x87
]


def _emulation_failures(stats) -> int:
    return stats.exits_by_reason.get("internal_error", 0)


def test_insns64_results_and_completion(guest):
    g = guest("insns64")
    r = run_flat(g.binary, g.load, g.mode)
    assert r.exit.reason == "debug-exit", r.exit
    assert r.exit.status == 0, f"unexpected exception vector {r.exit.status - 0x100}"
    assert r.stats.results == INSNS64_EXPECTED
    # Every emulation failure the backend reported was completed (else the VM would have
    # ended with QV_ERR_GUEST); the counters agree with the exits.
    assert r.stats.completed_insns == _emulation_failures(r.stats)


def test_fallback_disabled_turns_failures_into_guest_errors(guest):
    g = guest("insns64")
    r = run_flat(g.binary, g.load, g.mode, emulation_fallback=False)
    if _emulation_failures(r.stats) == 0:
        # Hardware KVM executes everything itself.
        assert r.exit.reason == "debug-exit" and r.exit.status == 0
        return
    assert r.exit.reason == "error"
    assert r.exit.error is not None and r.exit.error.name == "QV_ERR_GUEST"
    assert "RIP=" in r.exit.error.message  # register dump
    assert r.stats.completed_insns == 0
