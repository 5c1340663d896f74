"""The test device speaks the whole ABI of vendor/quac100/quac100_ioctl.h, not only what the
backend uses: GET_CAPS, RESET, DIAG_SELF_TEST, DIAG_GET_HEALTH, DIAG_GET_TEMP, the batch
ioctls with bad arguments, unknown commands. Raw ioctls from Python (fcntl), with the
header's numbers and layouts."""

from __future__ import annotations

import errno
import fcntl
import os
import struct

import pytest
from quac100_simdev import SimDevice

from quantavirt.pqc import KEM


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("Q") << 8) | nr


R, W, RW = 2, 1, 3


def test_raw_abi(card: SimDevice) -> None:
    fd = os.open(card.path, os.O_RDWR)
    try:
        def call(direction: int, nr: int, arg: bytes) -> bytes:
            buf = bytearray(arg)
            fcntl.ioctl(fd, _ioc(direction, nr, len(buf)), buf, True)
            return bytes(buf)

        assert struct.unpack("<I", call(R, 0x00, bytes(4)))[0] == 0x00010000  # GET_VERSION
        caps = struct.unpack("<I", call(R, 0x02, bytes(4)))[0]  # GET_CAPS
        assert caps & 0x80000000
        assert struct.unpack("<I", call(R, 0x03, bytes(4)))[0] == 1  # GET_STATUS: ready
        info = call(R, 0x01, bytes(184))  # GET_INFO
        assert struct.unpack_from("<I", info, 0)[0] == 184
        assert info[16:80].rstrip(b"\0").decode().startswith("QUAC 100")
        KEM("ML-KEM-512", backend="quac100").keygen()
        counters = struct.unpack("<10Q", call(R, 0xE3, bytes(80)))  # DIAG_GET_COUNTERS
        assert counters[0] == 1
        call(W, 0x04, struct.pack("<I", 0))  # RESET clears the counters
        assert struct.unpack("<10Q", call(R, 0xE3, bytes(80)))[0] == 0
        st = call(RW, 0xE0, struct.pack("<4IQi5I", 0b1011, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0))
        tests, _, passed, failed, _, result = struct.unpack_from("<4IQi", st)
        assert (passed, failed, result) == (0b1011, 0, 0)  # DIAG_SELF_TEST
        health = call(R, 0xE1, bytes(72))  # DIAG_GET_HEALTH
        state, _, temp_core = struct.unpack_from("<IIi", health)
        assert state == 1 and 0 < temp_core < 100
        assert struct.unpack("<i", call(R, 0xE2, bytes(4)))[0] == temp_core  # DIAG_GET_TEMP
        sub = call(RW, 0x80, bytes(64))  # BATCH_SUBMIT of operation 0: NOT_SUPPORTED
        assert struct.unpack_from("<i", sub, 40)[0] == 0x008
        status = call(RW, 0x81, struct.pack("<Q", 12345) + bytes(40))  # BATCH_STATUS, no such job
        assert struct.unpack_from("<i", status, 24)[0] == 0x004
        call(W, 0x82, struct.pack("<Q", 12345))  # BATCH_CANCEL of no job: nothing happens
        with pytest.raises(OSError) as e:  # async submit (0xA0) and the rest: not implemented
            call(RW, 0xA0, bytes(64))
        assert e.value.errno == errno.ENOTTY
    finally:
        os.close(fd)
