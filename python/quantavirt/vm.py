"""`quantavirt.VM`: one virtual machine built from an effective configuration.

The VM reads the schema's field names from the config dict (defaults applied with ``.get``,
the config validator fills them in first in the full flow), chooses devices and the boot path,
and drives the C engine (:mod:`quantavirt.engine`). The serial console is a byte stream
(:attr:`VM.console`) and, when ``console.log`` is set, a file.

Lifecycle (product documentation): CREATED -> RUNNING (start) -> STOPPED; any -> DESTROYED
(close). A transition from the wrong state is QV_ERR_STATE.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import select
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from quantavirt import cgroups
from quantavirt.config.sizes import parse_size
from quantavirt.engine import ExitInfo, Machine, Stats, load_flat
from quantavirt.errors import QVError
from quantavirt.host import HostInfo, probe
from quantavirt.vm_devices import AttachedDevices, attach_devices, disk_stats

log = logging.getLogger(__name__)

F_SETPIPE_SZ = 1031
CONSOLE_PIPE_SIZE = 1 << 20


class ConsoleStream:
    """The serial console's output as a stream of bytes: iterate for chunks as they come, or
    `read(timeout)` for what is there. Ends (StopIteration / b"") after the VM stopped and
    everything was read."""

    def __init__(self, fd: int, ended: Callable[[], bool]) -> None:
        self._fd = fd
        self._ended = ended
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._eof = False
        self._thread = threading.Thread(target=self._pump, name="qv-console", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            r, _, _ = select.select([self._fd], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(self._fd, 65536)
                except BlockingIOError:
                    chunk = b""
                if chunk:
                    self._queue.put(chunk)
                    continue
            if not r and self._ended():
                self._queue.put(None)
                return

    def read(self, timeout: float | None = None) -> bytes:
        """The next chunk (b"" at the end, or when nothing arrived within `timeout`)."""
        if self._eof:
            return b""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return b""
        if item is None:
            self._eof = True
            return b""
        return item

    @property
    def at_end(self) -> bool:
        return self._eof

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is None:
                self._eof = True
                return
            yield item

    def join(self) -> None:
        self._thread.join()


def effective_cmdline(boot: Mapping[str, Any], host: HostInfo) -> str:
    """The guest kernel command line: the configured one plus the adaptations the host probe
    asks for on this backend (none on hardware KVM)."""
    parts = [str(boot.get("cmdline") or "").strip()]
    added = [a for a in host.guest_cmdline_adaptations if a not in parts[0].split()]
    if added:
        log.info("the KVM backend is %s: adding '%s' to the guest command line",
                 host.kvm_backend, " ".join(added))
    return " ".join(p for p in parts + added if p)


def direct_kernel_boot(machine: Machine, boot: Mapping[str, Any], cmdline: str) -> None:
    """Load boot.kernel (bzImage or PVH vmlinux), boot.initrd and `cmdline` into guest memory
    with the ACPI tables and e820 map, and set the boot vCPU's entry state."""
    kernel = str(boot["kernel"])
    initrd = boot.get("initrd")
    machine.load_linux(kernel, str(initrd) if initrd else None, cmdline)


class VM:
    """A VM from its effective configuration (schema field names)."""

    def __init__(self, config: Mapping[str, Any], *, kvm_path: str | None = None,
                 log_path: str | None = None, host: HostInfo | None = None,
                 flat_binary: bytes | None = None, flat_mode: str = "long",
                 flat_load: int = 0x100000) -> None:
        """`flat_binary` runs a freestanding binary instead of a kernel (diagnostics and the
        `launch --flat` option); everything else follows the configuration."""
        self.config = config
        self.name = str(config.get("name", "vm"))
        self.state = "CREATED"
        cpu = _section(config, "cpu")
        memory = _section(config, "memory")
        console = _section(config, "console")
        boot = _section(config, "boot")
        count = cpu.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise QVError("QV_ERR_INVAL", "cpu.count must be a positive integer", path="cpu.count")
        try:
            size = parse_size(memory.get("size", ""))
        except ValueError as e:
            raise QVError("QV_ERR_INVAL", str(e), path="memory.size") from None
        hugepages = memory.get("hugepages", False)
        if hugepages not in (False, None, "2M", "1G"):
            raise QVError("QV_ERR_INVAL", f"unknown hugepage size {hugepages!r}",
                          path="memory.hugepages")
        self._weight, self._cap = _weight_cap(cpu)
        self.host = host or probe(kvm_path)
        kernel = boot.get("kernel")
        if flat_binary is None:
            if not kernel:
                raise QVError("QV_ERR_NOTSUP",
                              "firmware boot not supported yet; set boot.kernel for direct "
                              "kernel boot", path="boot.kernel")
            if not Path(kernel).is_file():
                raise QVError("QV_ERR_NOENT", f"kernel image {kernel} not found",
                              path="boot.kernel")
            initrd = boot.get("initrd")
            if initrd and not Path(initrd).is_file():
                raise QVError("QV_ERR_NOENT", f"initrd {initrd} not found", path="boot.initrd")
        self.console_log: str | None = console.get("log")
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        try:
            fcntl.fcntl(wfd, F_SETPIPE_SZ, CONSOLE_PIPE_SIZE)
        except OSError:
            pass  # the default size works, only bursts beyond it are dropped
        os.set_blocking(wfd, False)
        os.set_blocking(rfd, False)
        self._rfd, self._wfd = rfd, wfd
        self._ended = threading.Event()
        self.devices = AttachedDevices()
        try:
            self.machine = Machine(
                memory=size, cpus=count, hugepages=hugepages or None,
                prealloc=bool(memory.get("prealloc", False)),
                max_memory=_max_memory(memory, size),
                numa_node=cpu.get("numa_node"), console_fd=wfd,
                console_log=self.console_log, log_path=log_path, kvm_path=kvm_path,
                test_device=flat_binary is not None,
                emulation_fallback=True, **_cpu_options(cpu, count))
            attach_devices(self.machine, config, self.devices)
            if flat_binary is not None:
                load_flat(self.machine, flat_binary, flat_mode, flat_load)
            else:
                self.cmdline = effective_cmdline(boot, self.host)
                direct_kernel_boot(self.machine, boot, self.cmdline)
        except BaseException:
            self._close_fds()
            if hasattr(self, "machine"):
                self.machine.close()
            self.devices.close()
            raise
        self.console = ConsoleStream(rfd, self._has_ended)
        self._exit: ExitInfo | None = None
        self._waiter: threading.Thread | None = None
        self._log_path = log_path
        uuid = config.get("uuid")
        self.cgroup_name = (str(uuid) if isinstance(uuid, str) and uuid
                            else f"{self.name}-{os.getpid()}-{id(self):x}")
        self.cgroups: cgroups.VcpuCgroups | None = None

    def _has_ended(self) -> bool:
        """True once every vCPU stopped (or the VM was closed); polled by the console."""
        if self._ended.is_set():
            return True
        if self.state == "CREATED":
            return False
        try:
            return self.machine.wait(0) is not None
        except QVError:
            return True  # destroyed underneath: nothing more will be written

    def _close_fds(self) -> None:
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._rfd = self._wfd = -1

    def start(self) -> None:
        if self.state != "CREATED":
            raise QVError("QV_ERR_STATE", f"cannot start a VM in state {self.state}")
        if self._weight == cgroups.DEFAULT_WEIGHT and self._cap == 0:
            self.machine.start()
        else:
            # cpu.weight / cpu.cap: the vCPU threads go into their cgroups before any guest
            # code runs (a warning where the host does not allow it; the VM runs either way).
            self.machine.start(parked=True)
            try:
                self.cgroups = cgroups.apply(self.cgroup_name, self.machine.vcpu_tids(),
                                             self._weight, self._cap, log_path=self._log_path)
            finally:
                self.machine.resume()
        self.state = "RUNNING"

    def wait(self, timeout: float | None = None) -> ExitInfo | None:
        """How the VM ended, or None if it is still running after `timeout` seconds."""
        if self.state == "CREATED":
            raise QVError("QV_ERR_STATE", "the VM was not started")
        if self._exit is None:
            if self.state == "DESTROYED":
                raise QVError("QV_ERR_STATE", "the VM was destroyed")
            ex = self.machine.wait(timeout)
            if ex is None:
                return None
            self._exit = ex
            self.state = "STOPPED"
            self._ended.set()
        return self._exit

    def stop(self) -> ExitInfo:
        """Stop the vCPUs now, paused or not (the forced stop; power_button asks the guest)."""
        if self.state not in ("RUNNING", "PAUSED"):
            raise QVError("QV_ERR_STATE", f"cannot stop a VM in state {self.state}")
        self.machine.stop()
        ex = self.wait()
        assert ex is not None
        return ex

    def pause(self) -> None:
        """RUNNING -> PAUSED: every vCPU leaves KVM_RUN and parks."""
        if self.state != "RUNNING":
            raise QVError("QV_ERR_STATE", f"cannot pause a VM in state {self.state}")
        self.machine.pause()
        self.state = "PAUSED"

    def resume(self) -> None:
        """PAUSED -> RUNNING."""
        if self.state != "PAUSED":
            raise QVError("QV_ERR_STATE", f"cannot resume a VM in state {self.state}")
        self.machine.resume()
        self.state = "RUNNING"

    def power_button(self) -> None:
        """Ask the guest to shut down (ACPI power button); wait() tells when it did."""
        if self.state != "RUNNING":
            raise QVError("QV_ERR_STATE", f"cannot press the power button in state {self.state}")
        self.machine.power_button()

    def vcpu_tids(self) -> list[int]:
        return self.machine.vcpu_tids()

    @property
    def exit_status(self) -> int | None:
        """0 after a guest power-off, the value after a debug exit, else None."""
        return self._exit.status if self._exit else None

    def stats(self) -> Stats:
        """Engine counters plus per-disk bytes and operations (``disks``)."""
        st = self.machine.stats()
        st.disks = disk_stats(self.machine, self.devices)
        return st

    def balloon(self, target_bytes: int) -> None:
        """Ask the guest's balloon driver to hold `target_bytes` of its memory (0 deflates).
        QV_ERR_NODEV unless memory.balloon is set."""
        self.machine.balloon_set_target(target_bytes)

    def balloon_info(self, refresh: bool = False) -> dict[str, object]:
        """The balloon's current size and the guest's memory statistics (refresh asks the
        driver for new ones; they arrive asynchronously)."""
        return self.machine.balloon_info(refresh)

    def console_input(self, data: bytes) -> None:
        self.machine.console_input(data)

    def close(self) -> None:
        """Destroy: stop, join every thread, close every fd, unmap guest RAM."""
        if self.state == "DESTROYED":
            return
        self.machine.close()
        if self.cgroups is not None:
            self.cgroups.close()  # the vCPU threads are joined: the cgroups are empty
        self.devices.close()
        self._ended.set()
        self.console.join()
        self._close_fds()
        self.state = "DESTROYED"

    def __enter__(self) -> VM:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _cpu_options(cpu: Mapping[str, Any], count: int) -> dict[str, Any]:
    """cpu.model / cpu.features / cpu.topology as Machine keyword arguments (the C side checks
    names and the topology against cpu.count, naming the config path)."""
    model = cpu.get("model") or "host"
    features = cpu.get("features") or []
    if not isinstance(model, str):
        raise QVError("QV_ERR_INVAL", "cpu.model must be a string", path="cpu.model")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise QVError("QV_ERR_INVAL", "cpu.features must be a list of strings",
                      path="cpu.features")
    topo = cpu.get("topology") or {}
    if not isinstance(topo, Mapping):
        raise QVError("QV_ERR_INVAL", "cpu.topology must be an object", path="cpu.topology")
    values = (topo.get("sockets", 1), topo.get("cores", None), topo.get("threads", 1))
    sockets, threads = values[0], values[2]
    cores = values[1] if values[1] is not None else None
    for name, v in (("sockets", sockets), ("threads", threads), ("cores", cores)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise QVError("QV_ERR_INVAL", f"cpu.topology.{name} must be a positive integer",
                          path=f"cpu.topology.{name}")
    if cores is None:
        cores = max(1, count // (sockets * threads))
    return {"cpu_model": model, "cpu_features": list(features),
            "topology": (sockets, cores, threads), "pin": _pin_list(cpu.get("pin"), count)}


def _weight_cap(cpu: Mapping[str, Any]) -> tuple[int, int]:
    weight, cap = cpu.get("weight", cgroups.DEFAULT_WEIGHT), cpu.get("cap", 0)
    for name, v, lo, hi in (("weight", weight, 1, 65535), ("cap", cap, 0, 100)):
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise QVError("QV_ERR_INVAL", f"cpu.{name} must be an integer {lo}..{hi}",
                          path=f"cpu.{name}")
    return weight, cap


def _pin_list(pin: Any, count: int) -> list[int] | None:
    """cpu.pin ({"vCPU": host CPU}) as one entry per vCPU, -1 where not pinned."""
    if pin is None:
        return None
    if not isinstance(pin, Mapping):
        raise QVError("QV_ERR_INVAL", "cpu.pin must be an object of vCPU -> host CPU",
                      path="cpu.pin")
    out = [-1] * count
    for key, host_cpu in pin.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < count):
            raise QVError("QV_ERR_INVAL", f"vCPU {key!r} does not exist (count is {count})",
                          path=f"cpu.pin.{key}")
        if not isinstance(host_cpu, int) or isinstance(host_cpu, bool) or host_cpu < 0:
            raise QVError("QV_ERR_INVAL", f"host CPU {host_cpu!r} is not a CPU index",
                          path=f"cpu.pin.{key}")
        out[int(key)] = host_cpu
    return out


def _max_memory(memory: Mapping[str, Any], size: int) -> int:
    """memory.max_size in bytes (memory.size when absent)."""
    value = memory.get("max_size")
    if value is None:
        return size
    try:
        max_size = parse_size(value)
    except ValueError as e:
        raise QVError("QV_ERR_INVAL", str(e), path="memory.max_size") from None
    if max_size < size:
        raise QVError("QV_ERR_INVAL", f"max_size {value} is smaller than size",
                      path="memory.max_size")
    return max_size


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = config.get(name) or {}
    if not isinstance(value, Mapping):
        raise QVError("QV_ERR_INVAL", f"{name} must be an object", path=name)
    return value
