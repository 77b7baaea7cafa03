"""A process's own accounting from /proc: CPU time (utime + stime) and memory (VmRSS, VmHWM).

Linux only. A multi-worker gateway is a parent plus its worker processes: ``tree`` sums them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_seconds: float  # user + system, summed over the processes sampled
    rss_kb: int  # VmRSS, summed
    hwm_kb: int  # VmHWM (peak RSS), the largest single process
    pids: tuple[int, ...]


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()  # fields after "pid (comm) ", comm may hold spaces


def cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)


def status_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (scans /proc; no CONFIG_PROC_CHILDREN needed)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry))[1]) == pid:
                out.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and every descendant."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children(p))
    return found


def sample(pids: list[int]) -> ProcSample:
    cpu, rss, hwm, alive = 0.0, 0, 0, []
    for p in pids:
        try:
            cpu += cpu_seconds(p)
            rss += status_kb(p, "VmRSS")
            hwm = max(hwm, status_kb(p, "VmHWM"))
            alive.append(p)
        except (OSError, ValueError, IndexError):
            continue
    return ProcSample(cpu, rss, hwm, tuple(alive))


def workers(pid: int) -> list[int]:
    """The processes that serve requests: the leaves of the tree (the pid itself when it has no children)."""
    kids = children(pid)
    return [pid] if not kids else [w for k in kids for w in workers(k)]


def max_rss_kb(pids: list[int]) -> int:
    """The largest VmRSS of one process among ``pids`` (the per-worker figure)."""
    best = 0
    for p in pids:
        try:
            best = max(best, status_kb(p, "VmRSS"))
        except OSError:
            continue
    return best


def pin(pid: int, cores: set[int]) -> bool:
    """Pin ``pid`` (and the threads it starts later) to ``cores``; False where the machine does not allow it."""
    try:
        os.sched_setaffinity(pid, cores)
        return True
    except (OSError, AttributeError, ValueError):
        return False


def usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat: everything but idle and iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"
