"""cpu.weight and cpu.cap of a VM through the host's cgroups.

Each VM gets a cgroup ``quantavirt/<vm>`` holding one child per vCPU thread (``vcpu0``,
``vcpu1``, ...). The VM cgroup carries the weight (the VM's share of contended host CPU time
against other cgroups); each vCPU child carries the cap, so a cap of 50 holds *each* vCPU to
half of one host CPU, as the schema says ("max % of one pCPU per vCPU").

Hierarchies, first that works:

* cgroup v2 with the ``cpu`` controller available (``cgroup.controllers``): the VMM process
  moves into ``quantavirt/<vm>`` (a threaded domain), the vCPU children are ``threaded`` and
  get the vCPU threads through ``cgroup.threads``; ``cpu.weight`` / ``cpu.max``. At teardown the
  process moves back to the cgroup it came from.
* cgroup v1 with the ``cpu`` controller mounted: only the vCPU threads move (``tasks``);
  ``cpu.shares`` / ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``.
* Neither, or not writable: one ``[WARN] quantavirt::cgroups: ...`` line saying why, and the
  VM runs without weight and cap.

``$QUANTAVIRT_CGROUP_ROOT`` names the hierarchy to use instead of the detected one.
Weights: the schema's 1..65535 with default 256 (Xen's credit scheduler) scale to the
cgroup's default: v2 ``cpu.weight`` = weight * 100 / 256 (1..10000), v1 ``cpu.shares`` =
weight * 4 (2..262144).
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from quantavirt import logs

CGROUP_ROOT_ENV = "QUANTAVIRT_CGROUP_ROOT"
SUBSYSTEM = "cgroups"
DEFAULT_WEIGHT = 256
CPU_PERIOD_US = 100_000
GROUP_DIR = "quantavirt"


def v2_weight(weight: int) -> int:
    """cgroup v2 cpu.weight for a schema weight (default 256 -> the cgroup default 100)."""
    return min(10_000, max(1, round(weight * 100 / DEFAULT_WEIGHT)))


def v1_shares(weight: int) -> int:
    """cgroup v1 cpu.shares for a schema weight (default 256 -> the cgroup default 1024)."""
    return min(262_144, max(2, weight * 4))


def cap_quota_us(cap: int) -> int | None:
    """CPU time per CPU_PERIOD_US one vCPU may use, or None for no cap (cap 0)."""
    return None if cap == 0 else cap * CPU_PERIOD_US // 100


@dataclass(frozen=True)
class Hierarchy:
    version: int  # 1 or 2
    root: Path    # the mount point (v2) or the cpu controller's mount (v1)


def _mounts(mountinfo: str) -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of each line of /proc/self/mountinfo."""
    out = []
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(rest) < 3:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        out.append((point, rest[0], set(rest[2].split(","))))
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def find_hierarchy(mountinfo: str | None = None,
                   env: dict[str, str] | None = None) -> tuple[Hierarchy | None, str]:
    """The hierarchy to put vCPU threads in, or (None, why not)."""
    env = dict(os.environ) if env is None else env
    forced = env.get(CGROUP_ROOT_ENV)
    if forced:
        root = Path(forced)
        if (root / "cgroup.controllers").is_file():
            return _v2_or_why(root)
        if (root / "cpu.shares").is_file() and (root / "tasks").is_file():
            return Hierarchy(1, root), ""
        return None, (f"{root} (from ${CGROUP_ROOT_ENV}) is neither a cgroup v2 hierarchy nor "
                      "a cgroup v1 cpu hierarchy")
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError as e:
            return None, f"cannot read /proc/self/mountinfo: {e.strerror}"
    mounts = _mounts(mountinfo)
    why = "no cgroup v2 hierarchy and no cgroup v1 cpu controller is mounted"
    for point, fstype, _ in mounts:
        if fstype == "cgroup2":
            found, why = _v2_or_why(Path(point))
            if found:
                return found, ""
    for point, fstype, opts in mounts:
        if fstype == "cgroup" and "cpu" in opts:
            return Hierarchy(1, Path(point)), ""
    return None, why


def _v2_or_why(root: Path) -> tuple[Hierarchy | None, str]:
    controllers = _read(root / "cgroup.controllers").split()
    if "cpu" not in controllers:
        return None, (f"the cgroup v2 hierarchy at {root} has no cpu controller (cgroup."
                      f"controllers: {' '.join(controllers) or 'none'}; it may be bound to "
                      "cgroup v1)")
    return Hierarchy(2, root), ""


def _own_v1_cpu_cgroup() -> str:
    """This process's cgroup in the v1 hierarchy holding the cpu controller, "/" when
    unknown."""
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and "cpu" in parts[1].split(","):
            return parts[2] or "/"
    return "/"


def _own_v2_cgroup() -> str:
    """This process's cgroup v2 path (the "0::" line), "/" when unknown."""
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@dataclass
class VcpuCgroups:
    """The cgroups of one running VM (see the module doc); `close` removes them."""

    hierarchy: Hierarchy
    vm_dir: Path
    vcpu_dirs: list[Path] = field(default_factory=list)
    # Where the process was (read before any move): v2 moves it back at close, v1 moves the
    # threads back after a failed setup.
    home: Path | None = None
    moved: list[int] = field(default_factory=list)  # v1: threads moved (rolled back on failure)
    closed: bool = False

    def roll_back(self) -> None:
        """After a failed setup: the v1 threads already moved go back where the process is,
        so the cgroups can be removed while the threads live on."""
        if self.hierarchy.version == 1 and self.moved and self.home is not None:
            home = self.home
            for tid in self.moved:
                try:
                    _write(home / "tasks", str(tid))
                except OSError as e:
                    logs.log("WARN", SUBSYSTEM, f"moving thread {tid} back to {home}: "
                             f"{e.strerror}")
            self.moved.clear()
        self.close()

    def close(self) -> None:
        """Remove the cgroups; call after the vCPU threads ended (a cgroup with a live
        thread cannot be removed). Never raises: a leftover is logged."""
        if self.closed:
            return
        self.closed = True
        if self.home is not None and self.hierarchy.version == 2:
            try:
                _write(self.home / "cgroup.procs", str(os.getpid()))
            except OSError as e:
                logs.log("WARN", SUBSYSTEM, f"moving the VMM back to {self.home}: {e.strerror}")
        for d in [*self.vcpu_dirs, self.vm_dir]:
            # KVM's per-VM worker thread (started in vCPU 0's cgroup) ends shortly after the VM
            # fd is closed: give it a moment before calling the cgroup busy.
            for attempt in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno == errno.EBUSY and attempt < 99:
                        time.sleep(0.01)
                        continue
                    logs.log("WARN", SUBSYSTEM, f"cannot remove {d}: {e.strerror}")
                    break


def _note(level: str, message: str, log_path: str | None) -> None:
    """One line to stderr (by the log threshold) and to the VM log, if there is one."""
    logs.log(level, SUBSYSTEM, message)
    if log_path:
        try:
            with open(log_path, "a") as f:
                f.write(logs.format_line(level, SUBSYSTEM, message) + "\n")
        except OSError:
            pass


def _warn(message: str, log_path: str | None) -> None:
    _note("WARN", message, log_path)


def apply(vm_id: str, tids: list[int], weight: int = DEFAULT_WEIGHT, cap: int = 0, *,
          log_path: str | None = None,
          hierarchy: Hierarchy | None = None) -> VcpuCgroups | None:
    """Put the vCPU threads `tids` into cgroups with the VM's weight and cap. Returns the
    handle to remove them later, or None (after a warning) where the host does not allow it.
    Nothing is done for the defaults (weight 256, cap 0): the VM then needs no cgroup."""
    if weight == DEFAULT_WEIGHT and cap == 0:
        return None
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,80}", vm_id) or vm_id in (".", ".."):
        raise ValueError(f"cgroup name {vm_id!r} is not a plain name")
    why = ""
    if hierarchy is None:
        hierarchy, why = find_hierarchy()
    if hierarchy is None:
        _warn(f"cpu.weight/cpu.cap not applied: {why}", log_path)
        return None
    try:
        groups = (_apply_v2 if hierarchy.version == 2 else _apply_v1)(
            hierarchy, vm_id, tids, weight, cap)
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        _warn(f"cpu.weight/cpu.cap not applied: cgroup v{hierarchy.version} at "
              f"{hierarchy.root}{where}: {e.strerror or e}", log_path)
        return None
    _note("INFO", f"vCPU threads in {groups.vm_dir}/vcpu* (weight {weight}, cap "
          f"{f'{cap}%' if cap else 'none'}, cgroup v{hierarchy.version})", log_path)
    return groups


def _apply_v1(h: Hierarchy, vm_id: str, tids: list[int], weight: int,
              cap: int) -> VcpuCgroups:
    base = h.root / GROUP_DIR
    base.mkdir(exist_ok=True)
    groups = VcpuCgroups(h, base / vm_id, home=h.root / _own_v1_cpu_cgroup().lstrip("/"))
    groups.vm_dir.mkdir(exist_ok=True)
    try:
        _write(groups.vm_dir / "cpu.shares", str(v1_shares(weight)))
        quota = cap_quota_us(cap)
        for i, tid in enumerate(tids):
            d = groups.vm_dir / f"vcpu{i}"
            d.mkdir(exist_ok=True)
            groups.vcpu_dirs.append(d)
            _write(d / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(d / "cpu.cfs_quota_us", str(-1 if quota is None else quota))
            _write(d / "tasks", str(tid))
            groups.moved.append(tid)
    except OSError:
        groups.roll_back()
        raise
    return groups


def _apply_v2(h: Hierarchy, vm_id: str, tids: list[int], weight: int,
              cap: int) -> VcpuCgroups:
    own = _own_v2_cgroup()
    if own.startswith(f"/{GROUP_DIR}/"):
        # Moving the process again would drag the other VM's vCPU threads along.
        raise OSError(errno.EBUSY, f"this process already runs a VM in {own} (cgroup v2 allows "
                      "one VM per process: its threads must stay inside the process's cgroup)")
    home = h.root / own.lstrip("/")
    base = h.root / GROUP_DIR
    _enable_cpu(h.root)
    base.mkdir(exist_ok=True)
    _enable_cpu(base)
    groups = VcpuCgroups(h, base / vm_id)
    groups.vm_dir.mkdir(exist_ok=True)
    try:
        _write(groups.vm_dir / "cpu.weight", str(v2_weight(weight)))
        for i in range(len(tids)):
            d = groups.vm_dir / f"vcpu{i}"
            d.mkdir(exist_ok=True)
            groups.vcpu_dirs.append(d)
            _write(d / "cgroup.type", "threaded")
        # Threads of one process may sit in different cgroups only inside the threaded
        # subtree of the cgroup that holds the process.
        _write(groups.vm_dir / "cgroup.procs", str(os.getpid()))
        groups.home = home
        _enable_cpu(groups.vm_dir)
        quota = cap_quota_us(cap)
        for d, tid in zip(groups.vcpu_dirs, tids, strict=True):
            _write(d / "cpu.max", f"{'max' if quota is None else quota} {CPU_PERIOD_US}")
            _write(d / "cgroup.threads", str(tid))
    except OSError:
        groups.close()
        raise
    return groups


def _enable_cpu(cgroup: Path) -> None:
    if "cpu" in _read(cgroup / "cgroup.subtree_control").split():
        return
    try:
        _write(cgroup / "cgroup.subtree_control", "+cpu")
    except OSError as e:
        if e.errno != errno.EBUSY or "cpu" not in _read(cgroup / "cgroup.subtree_control"):
            raise
