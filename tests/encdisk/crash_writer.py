"""Writer process for test_crash.py: writes random requests to an encrypted image forever,
logging each request before ("B") and after ("A", acknowledged) it, until it is killed.

    crash_writer.py IMAGE HOME LOG SEED CACHE
Request j writes bytes derived only from (SEED, j), so the test can regenerate them.
"""

from __future__ import annotations

import os
import random
import sys

from quantavirt import encrypted_storage as es
from quantavirt.keys import KeyStore

SIZE = 256 * 4096


def request(seed: int, j: int) -> tuple[int, bytes]:
    rng = random.Random(seed * 1_000_003 + j)
    if rng.random() < 0.4:  # a 512-byte guest write inside a sector
        off = rng.randrange(SIZE // 512) * 512
        n = 512 * rng.randint(1, 2)
    else:  # a multi-sector write, up to 160 sectors (several 64-sector chunks), unaligned too
        off = rng.randrange(SIZE // 4096) * 4096 + rng.choice([0, 0, 512, 1536])
        n = 4096 * rng.randint(1, 160)
    n = min(n, SIZE - off)
    return off, rng.randbytes(n)


def main() -> None:
    image, home, log, seed, cache = sys.argv[1:6]
    disk = es.EncryptedDisk.open(image, "host", store=KeyStore(home), cache=cache)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, b"R\n")  # ready
    j = 0
    while True:
        off, data = request(int(seed), j)
        os.write(fd, f"B {j}\n".encode())
        disk.write(off, data)
        os.write(fd, f"A {j}\n".encode())
        j += 1


if __name__ == "__main__":
    main()
