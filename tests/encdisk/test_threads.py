"""Several threads (cffi releases the GIL around C calls) on one open disk, as virtio-blk
queues would be: requests are serialized by the disk, and every region reads back what its
thread wrote last, including 512-byte writes that share 4 KiB sectors with other threads."""

from __future__ import annotations

import random
import threading

from quantavirt import encrypted_storage as es


def test_concurrent_requests(make_image) -> None:
    size = 1 << 20
    path = make_image(size)
    nthreads = 4
    # Thread t owns every 512-byte block b with b % nthreads == t: neighbours in one 4 KiB
    # sector belong to different threads, so a lost read-modify-write would show.
    finals: list[dict[int, bytes]] = [{} for _ in range(nthreads)]
    errors: list[BaseException] = []
    with es.EncryptedDisk.open(path) as disk:
        def worker(t: int) -> None:
            rng = random.Random(t)
            try:
                for _ in range(400):
                    block = rng.randrange(size // 512 // nthreads) * nthreads + t
                    data = rng.randbytes(512)
                    disk.write(block * 512, data)
                    finals[t][block] = data
                    check = rng.choice(list(finals[t]))
                    assert disk.read(check * 512, 512) == finals[t][check]
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        image = disk.read(0, size)
    for t in range(nthreads):
        for block, data in finals[t].items():
            assert image[block * 512:(block + 1) * 512] == data
