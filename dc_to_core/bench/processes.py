"""The CPU and peak memory of a process tree (a deployment: the daemon, its code server, the
run workers they launch), read from ``/proc`` by a sampling thread.

``getrusage(RUSAGE_CHILDREN)`` only counts descendants that were waited for, all the way
up; a run worker's parent is the code server, which the daemon's stop may kill before it
reaps anything. So every process of the tree is sampled every ``interval_s``: its own CPU
(user + system) and ``VmHWM`` (its peak RSS), kept per process (pid and start time, so a
reused pid is a new process). A process's last ``interval_s`` before it exits is not seen:
the totals are low by at most that per process.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Seen:
    """One process of the tree, as last sampled."""

    kind: str           # "run worker", "code server", "daemon" or "other"
    cpu_s: float        # its own user + system CPU so far
    peak_rss_mb: float  # VmHWM
    base_cpu_s: float   # its CPU when the measurement started (``mark``)


def kind_of(cmdline: str, parent: str | None = None) -> str:
    """What a process of a Dagster deployment is, from its command line (and its parent's
    kind: the code server starts each run worker as a multiprocessing child)."""
    if "execute_run" in cmdline or "resume_run" in cmdline or (
            parent == "code server" and "spawn_main" in cmdline):
        return "run worker"
    if " grpc" in cmdline or "code-server" in cmdline:
        return "code server"
    if "dagster-daemon" in cmdline or "dagster_daemon" in cmdline:
        return "daemon"
    return "other"


def _stat(pid: str) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds, start time) of ``pid``, None if it is gone."""
    try:
        raw = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, int(fields[19])


def _peak_rss_mb(pid: str) -> float:
    try:
        for line in (PROC / pid / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cmdline(pid: str) -> str:
    try:
        return (PROC / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class ProcessTree:
    """Samples ``roots`` and their descendants until ``stop``; ``mark`` starts the measured part
    (CPU spent before it, like a daemon's start-up, is not counted)."""

    def __init__(self, *roots: int, interval_s: float = 0.2) -> None:
        self.roots, self.interval_s = roots, interval_s
        self.seen: dict[tuple[int, int], Seen] = {}
        self._marked = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="process-tree", daemon=True)

    def start(self) -> ProcessTree:
        self.sample()
        self._thread.start()
        return self

    def mark(self) -> None:
        """From now on: each process's CPU counts from what it has used so far."""
        self.sample()
        with self._lock:
            for s in self.seen.values():
                s.base_cpu_s = s.cpu_s
            self._marked = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        stats = {pid: st for pid in os.listdir(PROC) if pid.isdigit() and (st := _stat(pid))}
        children: dict[int, list[str]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        todo, tree = [str(r) for r in self.roots], []
        while todo:  # the roots and their descendants, breadth first
            pid = todo.pop(0)
            if pid in stats:
                tree.append(pid)
                todo += children.get(int(pid), [])
        with self._lock:
            for pid in tree:  # parents before their children
                ppid, cpu, start = stats[pid]
                key = (int(pid), start)
                s = self.seen.get(key)
                if s is None:  # born after the mark: all its CPU counts
                    parent = stats.get(str(ppid))
                    up = self.seen.get((ppid, parent[2])) if parent else None
                    s = self.seen[key] = Seen(kind_of(_cmdline(pid), up.kind if up else None),
                                              cpu, 0.0, cpu if not self._marked else 0.0)
                s.cpu_s = max(s.cpu_s, cpu)
                s.peak_rss_mb = max(s.peak_rss_mb, _peak_rss_mb(pid))

    def cpu_s(self, kind: str | None = None) -> float:
        """CPU since ``mark`` of every process (of ``kind``) sampled."""
        with self._lock:
            return sum(s.cpu_s - s.base_cpu_s for s in self.seen.values()
                       if kind is None or s.kind == kind)

    def peak_rss_mb(self, kind: str) -> float:
        with self._lock:
            return max((s.peak_rss_mb for s in self.seen.values() if s.kind == kind),
                       default=0.0)

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(s.kind == kind for s in self.seen.values())

    def summary(self) -> dict:
        """CPU by kind of process, the run workers' number and largest peak RSS."""
        kinds = sorted({s.kind for s in self.seen.values()})
        return {"deployment_cpu_s": round(self.cpu_s(), 2),
                "deployment_cpu_s_by_process": {k: round(self.cpu_s(k), 2) for k in kinds},
                "run_worker_processes": self.count("run worker"),
                "run_peak_rss_mb": round(self.peak_rss_mb("run worker"), 1),
                "code_server_peak_rss_mb": round(self.peak_rss_mb("code server"), 1),
                "daemon_peak_rss_mb": round(self.peak_rss_mb("daemon"), 1),
                "cpu_sampling_interval_s": self.interval_s}
