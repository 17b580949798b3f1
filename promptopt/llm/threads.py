"""How many threads torch computes with: the physical cores this process may use.

torch starts with the machine's physical cores, or with the CPUs in the
process's affinity when its OpenMP runtime reads it; neither looks at the CPU
quota of the process's cgroup (docker --cpus, Kubernetes limits), and the
affinity may hold both hyperthreads of a core. Threads beyond what the process
may use wait for each other instead of computing. So promptopt sets torch to
the physical cores in its affinity, capped by the quota, unless the user chose
a thread count (OMP_NUM_THREADS, MKL_NUM_THREADS or torch.set_num_threads).
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
CPU_SYSFS = Path("/sys/devices/system/cpu")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str
    changed: bool = False
    """Whether promptopt changed torch's thread count."""

    def describe(self) -> str:
        return f"torch threads {self.threads} ({self.reason})"


def usable_cores(
    affinity: Collection[int],
    core_of: Mapping[int, tuple[int, int]],
    quota: float | None,
) -> tuple[int, str]:
    """Physical cores among the CPUs in `affinity`, capped by a cgroup CPU quota.

    core_of maps a logical CPU to its (package, core); a CPU missing from it
    counts as a core of its own. A fractional quota rounds down (1.5 CPUs: 1
    thread), never below one.
    """
    cores = {core_of.get(cpu, (-1, cpu)) for cpu in affinity}
    count = max(1, len(cores))
    reason = f"{count} physical core{'s' if count != 1 else ''} this process may use"
    if quota is not None and quota < count:
        count = max(1, math.floor(quota))
        reason = f"cgroup CPU quota of {quota:g} CPUs"
    return count, reason


def choose_threads(
    environ: Mapping[str, str],
    current: int,
    torch_defaults: Collection[int],
    usable: tuple[int, str],
) -> ThreadChoice:
    """Keep a thread count the user chose; otherwise use what the process may use.

    torch_defaults are the counts torch picks by itself (the machine's physical
    cores, or the CPUs in the affinity, depending on its threading backend); any
    other count means someone called torch.set_num_threads, and that wins too.
    """
    for var in THREAD_VARS:
        if environ.get(var):
            return ThreadChoice(current, f"{var}={environ[var]} set by the user")
    if current not in torch_defaults:
        return ThreadChoice(current, "set by torch.set_num_threads before loading")
    threads, reason = usable
    return ThreadChoice(threads, reason, changed=threads != current)


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 `cpu.max` ("max 100000" or "200000 100000") as CPUs; None: no limit."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` as CPUs; -1 means no limit."""
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


# -- reading this machine -------------------------------------------------------------
def cgroup_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The tightest CPU quota on this process's cgroup and its ancestors (v2, then v1)."""
    limits: list[float] = []
    for directory in _cgroup_dirs(root):
        v2 = _read(directory / "cpu.max")
        if v2 is not None and (cpus := parse_cpu_max(v2)) is not None:
            limits.append(cpus)
        quota = _read(directory / "cpu.cfs_quota_us")
        period = _read(directory / "cpu.cfs_period_us")
        if quota is not None and period is not None and (cpus := parse_cfs(quota, period)):
            limits.append(cpus)
    return min(limits) if limits else None


def _cgroup_dirs(root: Path) -> list[Path]:
    """Directories that may hold this process's CPU limits, innermost first."""
    relative = []
    text = _read(Path("/proc/self/cgroup")) or ""
    for line in text.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers in ("", "cpu", "cpu,cpuacct", "cpuacct,cpu"):
            base = root if controllers == "" else root / controllers
            relative.append((base, Path(path.lstrip("/"))))
    dirs: list[Path] = []
    for base, path in relative:
        parts = path.parts
        dirs.extend(base.joinpath(*parts[:n]) for n in range(len(parts), -1, -1))
    dirs.extend([root, root / "cpu", root / "cpu,cpuacct"])
    return list(dict.fromkeys(dirs))


def cpu_topology(cpus: Collection[int], sysfs: Path = CPU_SYSFS) -> dict[int, tuple[int, int]]:
    """(package, core) of each logical CPU whose topology sysfs shows."""
    topology = {}
    for cpu in cpus:
        folder = sysfs / f"cpu{cpu}" / "topology"
        package, core = _read(folder / "physical_package_id"), _read(folder / "core_id")
        if package is not None and core is not None:
            try:
                topology[cpu] = (int(package), int(core))
            except ValueError:
                continue
    return topology


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _torch_defaults(affinity: Collection[int]) -> set[int]:
    """Counts torch starts with by itself: physical cores (cpuinfo) or the CPUs in
    the affinity (OpenMP), of the machine or of the affinity."""
    import torch

    every_cpu = range(os.cpu_count() or 1)
    counts = {len(every_cpu), len(affinity)}
    counts.add(len(set(cpu_topology(every_cpu).values())) or len(every_cpu))
    counts.add(len(set(cpu_topology(affinity).values())) or len(affinity))
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)  # recent torch only
    if get_capabilities is not None:
        cores = get_capabilities().get("num_physical_cores")
        if isinstance(cores, int) and cores > 0:
            counts.add(cores)
    return counts


def this_machine() -> ThreadChoice:
    """What `configure_torch_threads` would choose here, without changing anything."""
    import torch

    affinity = _affinity()
    usable = usable_cores(affinity, cpu_topology(affinity), cgroup_quota())
    return choose_threads(os.environ, torch.get_num_threads(), _torch_defaults(affinity), usable)


_CONFIGURED: ThreadChoice | None = None


def configure_torch_threads() -> ThreadChoice:
    """Set torch's thread count once per process and say what it is and why.

    Once: after the first call torch's count differs from its default, which
    a second look would mistake for the user's own choice.
    """
    global _CONFIGURED
    if _CONFIGURED is None:
        import torch

        choice = this_machine()
        if choice.changed:
            torch.set_num_threads(choice.threads)
        _CONFIGURED = choice
    return _CONFIGURED
