"""quantavirt.VM builds its PCI devices from the effective configuration: storage[] ->
virtio-blk (raw, qcow2, cdrom, limits), console -> virtio-console, virtio-rng, the balloon;
refusals name storage[i]. The freestanding virtio guest drives the first disk."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from quantavirt.errors import QVError
from quantavirt.vm import VM

pytestmark = pytest.mark.kvm

BASE = {"name": "t", "cpu": {"count": 1}, "memory": {"size": "64M"}}


def raw_image(path: Path, size: int = 16 << 20) -> Path:
    with open(path, "wb") as f:
        f.write(b"".join(bytes((s * 13 + i) & 0xFF for i in range(512)) for s in range(2048)))
        f.truncate(size)
    return path


def run(config: dict, guest: bytes, timeout: float = 60.0) -> tuple:
    with VM(config, flat_binary=guest, flat_mode="long", flat_load=0x100000) as vm:
        infos = []
        i = 0
        while True:
            try:
                infos.append(vm.machine.virtio_info(i))
            except QVError:
                break
            i += 1
        vm.start()
        ex = vm.wait(timeout)
        if ex is None:
            vm.stop()
            pytest.fail(f"guest did not finish: {vm.stats().results}")
        return ex, vm.stats(), infos


def test_config_devices_qcow2_disk_console_rng_balloon(tmp_path, virtio_guest):
    if not shutil.which("qemu-img"):
        pytest.skip("qemu-img not installed")
    raw = raw_image(tmp_path / "seed.raw")
    img = tmp_path / "d.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(img)], check=True)
    config = {**BASE, "memory": {"size": "64M", "balloon": True},
              "storage": [{"path": str(img), "discard": True, "boot_index": 0}]}
    ex, stats, infos = run(config, virtio_guest)
    assert ex.reason == "debug-exit" and ex.status == 0, (ex, stats.results)
    # blk, virtio-console (the default console), rng, balloon, in slots 1..4
    assert [(d["kind"], d["slot"]) for d in infos] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    (disk,) = stats.disks
    assert disk["storage"] == 0 and disk["boot_index"] == 0 and disk["path"] == str(img)
    assert disk["wr_bytes"] == 4096 and disk["wr_ops"] == 1
    assert disk["rd_ops"] == 3 and disk["flush_ops"] == 1 and disk["discard_ops"] == 1
    chk = subprocess.run(["qemu-img", "check", str(img)], capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout


def test_serial_console_has_no_virtio_console_and_iops_limit_throttles(tmp_path, virtio_guest):
    img = raw_image(tmp_path / "d.raw")
    config = {**BASE, "console": {"type": "serial"},
              "storage": [{"path": str(img), "format": "raw", "discard": True,
                           "iops_limit": 4}]}
    ex, stats, infos = run(config, virtio_guest)
    assert ex.reason == "debug-exit" and ex.status == 0, (ex, stats.results)
    assert [d["kind"] for d in infos] == [1, 3]
    # 8 requests against a bucket of 4 per second (one second of burst): some were held by
    # the rate limiter and finished on the I/O thread's timer
    assert stats.disks[0]["throttled"] > 0


def test_cdrom_is_read_only_and_the_image_unchanged(tmp_path, virtio_guest):
    img = raw_image(tmp_path / "cd.raw")
    digest = hashlib.sha256(img.read_bytes()).hexdigest()
    config = {**BASE, "storage": [{"path": str(img), "format": "raw", "media": "cdrom"}]}
    ex, stats, _ = run(config, virtio_guest)
    # the guest's first check needing a writable disk: discard must be offered (21) or the
    # write refused (42): a read-only device offers no DISCARD
    assert ex.reason == "debug-exit" and ex.status == 21, (ex, stats.results)
    assert hashlib.sha256(img.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("entry,code,path", [
    ({"type": "nvme"}, "QV_ERR_NOTSUP", "storage[0].type"),
    ({"type": "ide"}, "QV_ERR_NOTSUP", "storage[0].type"),
    ({"format": "qcow2"}, "QV_STR_ERR_FORMAT", "storage[0]"),
    ({"queues": 0}, "QV_ERR_INVAL", "storage[0].queues"),
    ({"io_limit": "fast"}, "QV_ERR_INVAL", "storage[0].io_limit"),
])
def test_bad_storage_entries(tmp_path, virtio_guest, entry, code, path):
    img = raw_image(tmp_path / "d.raw")
    config = {**BASE, "storage": [{"path": str(img), **entry}]}
    with pytest.raises(QVError) as e:
        VM(config, flat_binary=virtio_guest)
    assert e.value.name == code and e.value.path == path, e.value


def test_corrupt_qcow2_and_missing_image_are_clear_errors(tmp_path, virtio_guest):
    bad = tmp_path / "bad.qcow2"
    bad.write_bytes(b"QFI\xfb" + b"\x00\x00\x00\x03" + b"\xff" * 200)
    with pytest.raises(QVError) as e:
        VM({**BASE, "storage": [{"path": str(bad)}]}, flat_binary=virtio_guest)
    assert e.value.name.startswith("QV_STR_ERR") and e.value.path == "storage[0]", e.value
    assert str(bad) in e.value.message
    good = raw_image(tmp_path / "ok.raw")
    with pytest.raises(QVError) as e:
        VM({**BASE, "storage": [{"path": str(good)}, {"path": str(tmp_path / "none.raw")}]},
           flat_binary=virtio_guest)
    assert e.value.name == "QV_ERR_NOENT" and e.value.path == "storage[1]", e.value
    # the first disk was closed again: a writer can open it
    with VM({**BASE, "storage": [{"path": str(good), "format": "raw"}]},
            flat_binary=virtio_guest):
        pass


def test_balloon_needs_memory_balloon(tmp_path, virtio_guest):
    with VM(BASE, flat_binary=virtio_guest) as vm:
        with pytest.raises(QVError) as e:
            vm.balloon(16 << 20)
        assert e.value.name == "QV_ERR_NODEV"
    with VM({**BASE, "memory": {"size": "64M", "balloon": True}}, flat_binary=virtio_guest) as vm:
        vm.balloon(16 << 20)
        info = vm.balloon_info()
        assert info["actual_bytes"] == 0  # no driver in this guest
        with pytest.raises(QVError):
            vm.balloon(1 << 40)


@pytest.mark.parametrize(("io", "cache"), [("threads", "writeback"), ("native", "none")])
def test_config_io_mode_reaches_the_device(tmp_path, virtio_guest, io, cache):
    """storage[].io picks the engine: the guest's reads, write and flush went through it
    (native: io_uring on the raw file)."""
    img = raw_image(tmp_path / "d.raw")
    config = {**BASE, "storage": [{"path": str(img), "format": "raw", "discard": True,
                                   "io": io, "cache": cache}]}
    ex, stats, _ = run(config, virtio_guest)
    assert ex.reason == "debug-exit" and ex.status == 0, (ex, stats.results)
    (disk,) = stats.disks
    assert disk["aio_submitted"] == 5 and disk["io_errors"] == 1  # the read past the end
    assert disk["aio_uring"] == (5 if io == "native" else 0)


def test_unknown_io_mode_is_refused(tmp_path, virtio_guest):
    """(native with a writeback cache is refused by the configuration rules,
    tests/config; VM() itself takes it: io_uring works on the page cache too.)"""
    img = raw_image(tmp_path / "d.raw")
    flat = {"flat_binary": virtio_guest, "flat_mode": "long", "flat_load": 0x100000}
    with pytest.raises(QVError) as e:
        VM({**BASE, "storage": [{"path": str(img), "io": "posix"}]}, **flat)
    assert e.value.name == "QV_ERR_INVAL" and "io" in (e.value.path or ""), e.value
