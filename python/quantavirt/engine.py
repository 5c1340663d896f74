"""The KVM engine from Python: a thin, typed handle over the C core (csrc/kvm, csrc/devices).

:class:`Machine` owns one VM of the C core (guest RAM, in-kernel irqchip and PIT, the legacy
devices, one thread per vCPU). :func:`run_flat` runs a flat binary guest in one call; the test
guests and benchmarks use it. Policy (which devices, which kernel) lives in ``quantavirt.vm``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from types import TracebackType

from quantavirt._ffi import c_string, ffi, lib
from quantavirt.errors import QVError, code_of

#: Environment variable naming the KVM device (tests point it at a missing file).
KVM_DEVICE_ENV = "QUANTAVIRT_KVM_DEVICE"

EXIT_REASONS = {
    lib.QV_EXIT_NONE: "running",
    lib.QV_EXIT_DEBUG: "debug-exit",
    lib.QV_EXIT_POWEROFF: "poweroff",
    lib.QV_EXIT_RESET: "reset",
    lib.QV_EXIT_STOPPED: "stopped",
    lib.QV_EXIT_ERROR: "error",
}

BOOT_MODES = {"real": lib.QV_BOOT_REAL16, "prot32": lib.QV_BOOT_PROT32,
              "long": lib.QV_BOOT_LONG64}

# KVM exit reason numbers (linux/kvm.h) that the stats name.
KVM_EXIT_NAMES = {2: "io", 5: "hlt", 6: "mmio", 8: "shutdown", 9: "fail_entry", 10: "intr",
                  17: "internal_error", 24: "system_event"}

HUGEPAGE_KB = {None: 0, False: 0, "2M": 2048, "1G": 1048576}


def kvm_device_path(explicit: str | None = None) -> str:
    """The KVM device: an explicit path, else $QUANTAVIRT_KVM_DEVICE, else /dev/kvm."""
    return explicit or os.environ.get(KVM_DEVICE_ENV) or "/dev/kvm"


@dataclass(frozen=True)
class ExitInfo:
    reason: str                 # one of EXIT_REASONS' values
    status: int | None = None   # debug-exit value
    error: QVError | None = None


@dataclass
class Stats:
    exits_total: int = 0
    exits_by_reason: dict[str, int] = field(default_factory=dict)
    pio_exits: int = 0
    mmio_exits: int = 0
    unhandled_pio: int = 0
    unhandled_mmio: int = 0
    run_eagain: int = 0
    completed_insns: int = 0
    completed_by_kind: dict[str, int] = field(default_factory=dict)
    console_bytes: int = 0
    console_dropped: int = 0
    boot_timer_ns: int = 0
    boot_timer_value: int = 0
    results: list[int] = field(default_factory=list)
    disks: list[dict[str, object]] = field(default_factory=list)  # filled by VM.stats()


class Machine:
    """One VM of the C core. Create, load guest memory, set the boot vCPU, start, wait."""

    def __init__(self, *, memory: int, cpus: int = 1, hugepages: str | bool | None = None,
                 prealloc: bool = False, numa_node: int | None = None,
                 console_fd: int = -1, console_log: str | None = None,
                 log_path: str | None = None, test_device: bool = False,
                 emulation_fallback: bool = True, kvm_path: str | None = None,
                 cpu_model: str | None = None, cpu_features: list[str] | tuple[str, ...] = (),
                 topology: tuple[int, int, int] | None = None,
                 pin: list[int] | tuple[int, ...] | None = None,
                 max_memory: int | None = None) -> None:
        """`pin`: one entry per vCPU, the host CPU its thread is bound to or -1 (cpu.pin).
        `max_memory`: memory.max_size in bytes; above `memory` the hot-add range is reserved
        (guest-physical addresses and host address space only, no memory)."""
        if hugepages not in HUGEPAGE_KB:
            raise QVError("QV_ERR_INVAL", f"unknown hugepage size {hugepages!r}",
                          path="memory.hugepages")
        self._vm: object | None = None
        self._keep: list[object] = []
        cfg = ffi.new("struct qv_vm_config *")
        cfg.kvm_path = self._cstr(kvm_device_path(kvm_path))
        cfg.mem_size = memory
        cfg.hugepage_kb = HUGEPAGE_KB[hugepages]
        cfg.prealloc = int(prealloc)
        cfg.numa_node = -1 if numa_node is None else numa_node
        cfg.vcpus = cpus
        cfg.console_fd = console_fd
        cfg.console_log = self._cstr(console_log)
        cfg.log_path = self._cstr(log_path)
        cfg.test_device = int(test_device)
        cfg.emulation_fallback = int(emulation_fallback)
        cfg.cpu_model = self._cstr(cpu_model)
        feats = [self._cstr(f) for f in cpu_features]
        if feats:
            arr = ffi.new("const char *[]", feats)
            self._keep.append(arr)
            cfg.cpu_features = arr
        cfg.n_cpu_features = len(feats)
        if topology is not None:
            cfg.sockets, cfg.cores, cfg.threads = topology
        if pin is not None:
            if len(pin) != cpus:
                raise QVError("QV_ERR_INVAL", f"cpu.pin: {len(pin)} entries for {cpus} vCPUs",
                              path="cpu.pin")
            pins = ffi.new("int32_t[]", [int(c) for c in pin])
            self._keep.append(pins)
            cfg.vcpu_pin = pins
        cfg.max_mem_size = 0 if max_memory is None else max_memory
        out = ffi.new("struct qv_vm **")
        err = ffi.new("char[1024]")
        rc = lib.qv_vm_create(cfg, out, err, len(err))
        if rc != 0:
            _raise_with_path(rc, ffi.string(err).decode(errors="replace"))
        self._vm = out[0]
        self.cpus = cpus
        self.memory = memory
        self._exit: ExitInfo | None = None

    def _cstr(self, s: str | None) -> object:
        if s is None:
            return ffi.NULL
        buf = ffi.new("char[]", s.encode())
        self._keep.append(buf)
        return buf

    def _handle(self) -> object:
        if self._vm is None:
            raise QVError("QV_ERR_STATE", "the VM was destroyed")
        return self._vm

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            text = c_string(lib.qv_vm_error(self._vm)) if self._vm is not None else ""
            raise QVError(rc, f"{what}: {text}" if text else what)

    def write_phys(self, gpa: int, data: bytes) -> None:
        if gpa < 0:
            raise QVError("QV_ERR_INVAL", f"guest address {gpa:#x} is negative")
        rc = lib.qv_vm_write_phys(self._handle(), gpa, data, len(data))
        if rc != 0:
            raise QVError(rc, f"guest RAM has no room for {len(data)} bytes at {gpa:#x}")

    def read_phys(self, gpa: int, size: int) -> bytes:
        buf = ffi.new("uint8_t[]", size)
        rc = lib.qv_vm_read_phys(self._handle(), gpa, buf, size)
        if rc != 0:
            raise QVError(rc, f"guest RAM has no {size} bytes at {gpa:#x}")
        return bytes(ffi.buffer(buf, size))

    def set_boot_state(self, mode: str, rip: int, rsp: int = 0, *, rsi: int = 0, rbx: int = 0,
                       rflags: int = 2, cr0: int = 0, cr3: int = 0, cr4: int = 0, efer: int = 0,
                       gdt_base: int = 0, gdt_limit: int = 0, code_selector: int = 0,
                       data_selector: int = 0) -> None:
        st = ffi.new("struct qv_boot_cpu_state *")
        if mode not in BOOT_MODES:
            raise QVError("QV_ERR_INVAL", f"unknown boot mode {mode!r}")
        st.mode = BOOT_MODES[mode]
        st.rip, st.rsp, st.rsi, st.rbx, st.rflags = rip, rsp, rsi, rbx, rflags
        st.cr0, st.cr3, st.cr4, st.efer = cr0, cr3, cr4, efer
        st.gdt_base, st.gdt_limit = gdt_base, gdt_limit
        st.code_selector, st.data_selector = code_selector, data_selector
        self._check(lib.qv_vm_set_boot_state(self._handle(), st), "set boot state")

    def load_linux(self, kernel: str, initrd: str | None = None, cmdline: str = "") -> None:
        """Direct kernel boot: layout, ACPI tables, kernel (bzImage or PVH vmlinux), initrd and
        command line into guest RAM, and vCPU 0's entry state (csrc/kvm/linux_boot.c)."""
        err = ffi.new("char[1024]")
        rc = lib.qv_vm_load_linux(self._handle(), os.fsencode(kernel),
                                  os.fsencode(initrd) if initrd else ffi.NULL,
                                  cmdline.encode(), err, len(err))
        if rc != 0:
            _raise_with_path(rc, ffi.string(err).decode(errors="replace"))

    def set_boot_cpu_state(self, state: object) -> None:
        """Apply a `struct qv_boot_cpu_state *` a loader filled (csrc/boot)."""
        self._check(lib.qv_vm_set_boot_state(self._handle(), state), "set boot state")

    def start(self, *, parked: bool = False, timeout: float = 10.0) -> None:
        """Start the vCPUs. `parked`: every vCPU thread waits before its first guest
        instruction (until `resume()`), so its thread can be placed first (cgroups)."""
        if not parked:
            self._check(lib.qv_vm_start(self._handle()), "start")
            return
        rc = lib.qv_vm_start_parked(self._handle(), int(timeout * 1000))
        if rc == code_of("QV_ERR_TIMEOUT"):
            self.stop()
            raise QVError(rc, f"the vCPU threads did not all start within {timeout} s")
        self._check(rc, "start")

    def wait(self, timeout: float | None = None) -> ExitInfo | None:
        """The exit once every vCPU has stopped; None if still running after `timeout` s."""
        if self._exit is not None:
            return self._exit
        ex = ffi.new("struct qv_vm_exit *")
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        rc = lib.qv_vm_wait(self._handle(), ms, ex)
        if rc == code_of("QV_ERR_TIMEOUT"):
            return None
        self._check(rc, "wait")
        reason = EXIT_REASONS.get(ex.reason, "error")
        error = None
        if ex.reason == lib.QV_EXIT_ERROR:
            error = QVError(ex.error, c_string(lib.qv_vm_error(self._vm)))
        status = int(ex.status) if ex.reason == lib.QV_EXIT_DEBUG else None
        if ex.reason == lib.QV_EXIT_POWEROFF:
            status = 0
        self._exit = ExitInfo(reason, status, error)
        return self._exit

    def stop(self) -> None:
        if self._vm is not None:
            lib.qv_vm_stop(self._vm)

    def console_input(self, data: bytes) -> None:
        lib.qv_vm_console_input(self._handle(), data, len(data))

    # Run-time control (csrc/kvm/pause.c): pause parks every vCPU outside KVM_RUN.
    def pause(self, timeout: float = 5.0) -> None:
        rc = lib.qv_vm_pause(self._handle(), int(timeout * 1000))
        if rc == code_of("QV_ERR_STATE"):
            raise QVError(rc, "only a running, unpaused VM can be paused")
        self._check(rc, "pause")

    def resume(self) -> None:
        rc = lib.qv_vm_resume(self._handle())
        if rc == code_of("QV_ERR_STATE"):
            raise QVError(rc, "the VM is not paused")
        self._check(rc, "resume")

    @property
    def paused(self) -> bool:
        return bool(lib.qv_vm_is_paused(self._handle()))

    def power_button(self) -> None:
        """Press the ACPI power button (PM1 PWRBTN_STS; SCI when the guest enabled it)."""
        rc = lib.qv_vm_power_button(self._handle())
        if rc == code_of("QV_ERR_STATE"):
            raise QVError(rc, "the power button needs a running VM")
        self._check(rc, "power button")

    def pm1_state(self) -> tuple[int, int]:
        """(PM1 status, PM1 enable) as the guest sees them."""
        sts, en = ffi.new("uint16_t *"), ffi.new("uint16_t *")
        self._check(lib.qv_vm_pm1_state(self._handle(), sts, en), "PM1 state")
        return int(sts[0]), int(en[0])

    def hotplug_range(self) -> tuple[int, int]:
        """(guest-physical base, size) of the reserved hot-add range; (0, 0) without one."""
        gpa, size = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        self._check(lib.qv_vm_hotplug_range(self._handle(), gpa, size), "hot-add range")
        return int(gpa[0]), int(size[0])

    def vcpu_tids(self) -> list[int]:
        """Kernel thread id of each vCPU (0 for one whose thread has not run yet)."""
        vm = self._handle()
        return [int(lib.qv_vm_vcpu_tid(vm, i)) for i in range(lib.qv_vm_vcpu_count(vm))]

    def stats(self) -> Stats:
        st = ffi.new("struct qv_vm_stats *")
        self._check(lib.qv_vm_get_stats(self._handle(), st), "stats")
        by_reason = {KVM_EXIT_NAMES.get(i, str(i)): int(st.exits_by_reason[i])
                     for i in range(lib.QV_STAT_EXIT_KINDS) if st.exits_by_reason[i]}
        by_kind = {c_string(lib.qv_insn_kind_name(i)): int(st.completed_by_kind[i])
                   for i in range(lib.QV_INSN_KIND_COUNT) if st.completed_by_kind[i]}
        return Stats(
            exits_total=int(st.exits_total), exits_by_reason=by_reason,
            pio_exits=int(st.pio_exits), mmio_exits=int(st.mmio_exits),
            unhandled_pio=int(st.unhandled_pio), unhandled_mmio=int(st.unhandled_mmio),
            run_eagain=int(st.run_eagain),
            completed_insns=int(st.completed_insns), completed_by_kind=by_kind,
            console_bytes=int(st.console_bytes), console_dropped=int(st.console_dropped),
            boot_timer_ns=int(st.boot_timer_ns), boot_timer_value=int(st.boot_timer_value),
            results=[int(st.results[i]) for i in range(st.nresults)])

    # --- PCI devices (csrc/kvm/pci_devices.c); add them before start() -------------------

    def add_virtio_blk(self, disk: object, *, readonly: bool = False, discard: bool = False,
                       queues: int = 1, serial: str | None = None, io_limit: int = 0,
                       iops_limit: int = 0, queue_size: int = 0, io: str = "threads",
                       io_workers: int = 0) -> int:
        """A virtio-blk function over `disk` (a `struct qv_disk *`; the caller keeps it open
        until close()). `io`: "threads" (worker pool), "native" (io_uring) or "inline"
        (synchronously on the I/O thread). Returns the device index for
        blk_stats()/virtio_info()."""
        modes = {"inline": lib.QV_VIRTIO_BLK_IO_INLINE, "threads": lib.QV_VIRTIO_BLK_IO_THREADS,
                 "native": lib.QV_VIRTIO_BLK_IO_NATIVE}
        if io not in modes:
            raise QVError("QV_ERR_INVAL", f"unknown io mode {io!r}")
        opts = ffi.new("struct qv_virtio_blk_options *")
        opts.readonly = int(readonly)
        opts.discard = int(discard)
        opts.num_queues = queues
        opts.queue_size = queue_size
        opts.serial = self._cstr(serial)
        opts.io_limit = io_limit
        opts.iops_limit = iops_limit
        opts.io_mode = modes[io]
        opts.io_workers = io_workers
        idx = ffi.new("int *")
        self._check(lib.qv_vm_add_virtio_blk(self._handle(), disk, opts, idx), "virtio-blk")
        return int(idx[0])

    def add_virtio_console(self) -> None:
        self._check(lib.qv_vm_add_virtio_console(self._handle()), "virtio-console")

    def add_virtio_rng(self) -> None:
        self._check(lib.qv_vm_add_virtio_rng(self._handle()), "virtio-rng")

    def add_virtio_balloon(self, deflate_on_oom: bool = False) -> None:
        self._check(lib.qv_vm_add_virtio_balloon(self._handle(), int(deflate_on_oom)),
                    "virtio-balloon")

    def virtio_info(self, index: int) -> dict[str, int]:
        info = ffi.new("struct qv_vm_virtio_info *")
        self._check(lib.qv_vm_virtio_info(self._handle(), index, info), "virtio info")
        return {name: int(getattr(info, name)) for name in (
            "kind", "slot", "status", "memory_enabled", "bar", "num_queues", "ioeventfd",
            "thread_kicks", "exit_kicks", "msis", "irqfd_msis")}

    def blk_stats(self, index: int) -> dict[str, int]:
        st = ffi.new("struct qv_virtio_blk_stats *")
        self._check(lib.qv_vm_virtio_blk_stats(self._handle(), index, st), "virtio-blk stats")
        return {name: int(getattr(st, name)) for name in (
            "rd_ops", "rd_bytes", "wr_ops", "wr_bytes", "flush_ops", "discard_ops",
            "write_zeroes_ops", "get_id_ops", "io_errors", "unsupported", "throttled",
            "aio_submitted", "aio_uring", "aio_bounced", "aio_sync_fallback",
            "aio_max_inflight")}

    def balloon_set_target(self, target_bytes: int) -> None:
        if target_bytes < 0:
            raise QVError("QV_ERR_INVAL", "the balloon target cannot be negative")
        self._check(lib.qv_vm_balloon_set_target(self._handle(), target_bytes), "balloon")

    def balloon_info(self, refresh: bool = False) -> dict[str, object]:
        actual = ffi.new("uint32_t *")
        st = ffi.new("struct qv_virtio_balloon_stats *")
        self._check(lib.qv_vm_balloon_info(self._handle(), actual, st, int(refresh)),
                    "balloon")
        names = {0: "swap_in", 1: "swap_out", 2: "major_faults", 3: "minor_faults",
                 4: "free_memory", 5: "total_memory", 6: "available_memory",
                 7: "disk_caches", 8: "hugetlb_allocations", 9: "hugetlb_failures"}
        guest = {name: int(st.value[tag]) for tag, name in names.items()
                 if int(st.value[tag]) != 0xFFFFFFFFFFFFFFFF}
        return {"actual_bytes": int(actual[0]) * 4096, "guest_stats": guest,
                "stats_updates": int(st.updates), "inflated_pages": int(st.inflated_pages),
                "deflated_pages": int(st.deflated_pages), "bad_pfns": int(st.bad_pfns)}

    def close(self) -> None:
        """Stop the vCPUs, join their threads, close every fd, unmap guest RAM."""
        if self._vm is not None:
            lib.qv_vm_destroy(self._vm)
            self._vm = None

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _raise_with_path(code: int, text: str) -> None:
    """Raise QVError from a C message of the form "config.path: message" (or plain text)."""
    head, sep, rest = text.partition(": ")
    if sep and head and " " not in head and "/" not in head:
        raise QVError(code, rest or None, path=head)
    raise QVError(code, text or None)


# Fixed low-memory layout the flat-guest runner uses for protected and long mode.
FLAT_GDT = 0x800
FLAT_PML4 = 0x1000          # PML4, PDPT at +0x1000, four page directories after it
FLAT_STACK = 0x80000
CODE64_SEL, DATA_SEL, CODE32_SEL = 0x08, 0x10, 0x18


def flat_gdt() -> bytes:
    """null, 64-bit code (0x08), flat data (0x10), 32-bit code (0x18)."""
    return struct.pack("<4Q", 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF, 0x00CF9A000000FFFF)


def identity_page_tables(base: int = FLAT_PML4) -> bytes:
    """Identity map of the first 4 GiB with 2 MiB pages, user-accessible (for ring-3 tests)."""
    flags = 0x7  # present, writable, user
    pml4 = struct.pack("<Q", (base + 0x1000) | flags).ljust(4096, b"\0")
    pdpt = b"".join(struct.pack("<Q", (base + 0x2000 + i * 0x1000) | flags)
                    for i in range(4)).ljust(4096, b"\0")
    pds = b"".join(struct.pack("<Q", (i << 21) | flags | 0x80) for i in range(4 * 512))
    return pml4 + pdpt + pds


def load_flat(machine: Machine, binary: bytes, mode: str, load: int) -> None:
    """Put a flat binary at `load` and make vCPU 0 enter it in `mode` (see run_flat)."""
    if mode not in BOOT_MODES:
        raise QVError("QV_ERR_INVAL", f"unknown boot mode {mode!r}")
    machine.write_phys(load, binary)
    if mode == "real":
        machine.set_boot_state("real", load, rsp=0xFFF0)
        return
    gdt = flat_gdt()
    machine.write_phys(FLAT_GDT, gdt)
    cr3 = 0
    if mode == "long":
        machine.write_phys(FLAT_PML4, identity_page_tables())
        cr3 = FLAT_PML4
    machine.set_boot_state(mode, load, rsp=FLAT_STACK, gdt_base=FLAT_GDT,
                           gdt_limit=len(gdt) - 1, data_selector=DATA_SEL, cr3=cr3,
                           code_selector=CODE64_SEL if mode == "long" else CODE32_SEL)


@dataclass
class FlatResult:
    exit: ExitInfo
    stats: Stats
    console: bytes


def run_flat(binary: bytes, load_addr: int, mode: str = "real", memory: int = 64 << 20,
             cpus: int = 1, timeout: float = 30.0, *, test_device: bool = True,
             emulation_fallback: bool = True, kvm_path: str | None = None,
             log_path: str | None = None, data: dict[int, bytes] | None = None,
             console_input: bytes = b"") -> FlatResult:
    """Run a flat binary guest loaded at `load_addr`, entered at its first byte in `mode`
    ("real": cs = load_addr >> 4; "prot32": flat 32-bit; "long": 64-bit with the first
    4 GiB identity-mapped). `data` maps guest-physical addresses to bytes written before the
    start (parameters for the guest); `console_input` is typed into the serial port.
    Returns how it ended, the counters and the serial output.
    A guest still running after `timeout` seconds is stopped: QV_ERR_TIMEOUT."""
    rfd, wfd = os.pipe()
    os.set_blocking(wfd, False)
    os.set_blocking(rfd, False)
    console = bytearray()
    try:
        with Machine(memory=memory, cpus=cpus, console_fd=wfd, test_device=test_device,
                     emulation_fallback=emulation_fallback, kvm_path=kvm_path,
                     log_path=log_path) as m:
            load_flat(m, binary, mode, load_addr)
            for gpa, blob in (data or {}).items():
                m.write_phys(gpa, blob)
            if console_input:
                m.console_input(console_input)
            m.start()
            ex = None
            waited = 0.0
            while ex is None and waited < timeout:
                ex = m.wait(min(0.2, timeout - waited))
                waited += 0.2
                console += _drain(rfd)
            if ex is None:
                m.stop()
                m.wait()
                console += _drain(rfd)
                raise QVError("QV_ERR_TIMEOUT", f"the guest ran longer than {timeout} s")
            stats = m.stats()
            console += _drain(rfd)
            return FlatResult(ex, stats, bytes(console))
    finally:
        os.close(rfd)
        os.close(wfd)


def _drain(fd: int) -> bytes:
    out = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)
