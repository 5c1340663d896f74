"""The completion fallback parses guest-controlled bytes and guest-controlled addresses: random
instruction bytes behind the opcodes it decodes, with random register contents, must end the
VM cleanly (a debug exit, a guest error or a triple fault as QV_ERR_GUEST) -- never crash the
VMM or hang it."""

from __future__ import annotations

import random

import pytest

from quantavirt.engine import run_flat

pytestmark = pytest.mark.kvm

OPCODES = [b"\xf3\x0f\xb8", b"\xf3\x48\x0f\xb8", b"\x66\xf3\x0f\xb8", b"\x67\xf3\x0f\xb8",
           b"\x0f\xae", b"\x48\x0f\xae", b"\x48\x0f\xc7", b"\xf0\x48\x0f\xc7", b"\x65\x0f\xae",
           b"\x0f\x01", b"\xcc", b"\x9b"]


def _program(rng: random.Random) -> bytes:
    code = bytearray()
    for reg in range(8):  # mov $imm64, %r(ax..di) with random values (rsp kept)
        if reg == 4:
            continue
        code += bytes([0x48, 0xB8 + reg]) + rng.getrandbits(64).to_bytes(8, "little")
    code += rng.choice(OPCODES) + rng.randbytes(12)
    code += b"\xb0\x00\xe6\xf4"  # mov $0,%al; out %al,$0xf4 (if the bytes fall through)
    return bytes(code)


@pytest.mark.parametrize("seed", range(40))
def test_random_operands_end_cleanly(seed: int):
    rng = random.Random(seed)
    r = run_flat(_program(rng), 0x100000, "long", memory=32 << 20, timeout=20)
    assert r.exit.reason in ("debug-exit", "error", "reset", "poweroff")
    if r.exit.reason == "error":
        assert r.exit.error is not None and r.exit.error.name in ("QV_ERR_GUEST", "QV_ERR_KVM")
