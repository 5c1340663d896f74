"""Ring 3 and back through SYSCALL/SYSRET.

On hardware KVM the round trip completes: user CPL 3, entry point CPL 0, CPL 3 again after
SYSRETQ. On the emulating backend (kvm_pvm) the documented behaviour is different and this test
pins it down: ring 3 is reached through IRETQ, but SYSCALL arrives at the LSTAR entry point
still at CPL 3 (CS 0x23), so the entry's SYSRETQ -- privileged -- raises #GP from CPL 3. That
is why a Linux guest's init dies at its first system call on this backend. The backend is
detected by the host probe, never assumed."""

from __future__ import annotations

import pytest

from quantavirt.engine import run_flat
from quantavirt.host import probe

pytestmark = pytest.mark.kvm


def test_syscall_sysret_round_trip(guest):
    g = guest("syscall")
    r = run_flat(g.binary, g.load, g.mode)
    backend = probe().kvm_backend
    assert r.exit.reason == "debug-exit", r.exit
    assert r.stats.results[0] == 0x103  # IRETQ reached ring 3
    if backend == "hardware":
        assert r.stats.results == [0x103, 0x200, 0x303]
        assert r.exit.status == 0
    else:
        assert backend == "emulating"
        # SYSCALL entry runs at CPL 3; SYSRETQ there faults with #GP (vector 13) from CPL 3.
        assert r.stats.results == [0x103, 0x203, 0xE0D, 3]
        assert r.exit.status == 0x100 + 13
