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


def test_insns16_real_mode_addressing(guest):
    g = guest("insns16")
    r = run_flat(g.binary, g.load, g.mode)
    assert r.exit.reason == "debug-exit" and r.exit.status == 0, r.exit
    assert r.stats.results == [1, 1, 8, 6, 1, 8, 16, 2, 1, 0]
    assert r.stats.completed_insns == _emulation_failures(r.stats)


def test_insns32_protected_mode(guest):
    g = guest("insns32")
    r = run_flat(g.binary, g.load, g.mode)
    assert r.exit.reason == "debug-exit" and r.exit.status == 0, r.exit
    assert r.stats.results == [1, 1, 16, 3, 0x3F80, 0x1F80, 0x0BADF00D, 0x9B]
    assert r.stats.completed_insns == _emulation_failures(r.stats)


def test_unknown_instruction_is_guest_error_with_bytes(guest):
    # xsave with CR4.OSXSAVE clear is not completed by the fallback: on an emulating backend
    # the VM must end with QV_ERR_GUEST naming the bytes; hardware raises #UD, which with no
    # IDT becomes a triple fault -- also QV_ERR_GUEST with a register dump.
    code = bytes.fromhex("0fae2425000010 00".replace(" ", ""))  # xsave [0x100000]
    r = run_flat(code, 0x200000, "long")
    assert r.exit.reason == "error"
    err = r.exit.error
    assert err is not None and err.name == "QV_ERR_GUEST"
    assert "RIP=" in err.message
    if _emulation_failures(r.stats):
        assert "0f ae 24 25 00 00 10 00" in err.message


def test_triple_fault_is_guest_error(guest):
    # ud2 with no IDT: #UD -> #DF -> triple fault (KVM_EXIT_SHUTDOWN).
    r = run_flat(b"\x0f\x0b", 0x200000, "long")
    assert r.exit.reason == "error"
    assert r.exit.error is not None and r.exit.error.name == "QV_ERR_GUEST"
    assert "triple fault" in r.exit.error.message or "emulation failure" in r.exit.error.message
    assert "CR3=" in r.exit.error.message
