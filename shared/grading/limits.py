"""Limits for a child's whole process tree: a control group (cgroup) of its own.

``RLIMIT_DATA`` bounds each process on its own, so a child that forks N processes could take N
times that memory. A cgroup bounds every process in it together, and a process cannot leave it
without write access to the cgroup files (the graded code runs as another user, or under
bubblewrap with ``/sys`` read-only). Where the machine allows it, :func:`open_tree_limit`
creates one below the grader's own cgroup:

- **cgroup v2** (one ``cgroup2`` hierarchy): ``memory.max``, ``memory.swap.max`` 0 and
  ``pids.max`` in a new child cgroup, where the grader's cgroup hands the ``memory``
  controller to its children (its ``cgroup.subtree_control``; a cgroup that holds processes
  itself cannot start doing so, which is why a container's root cgroup often refuses).
- **cgroup v1** (a hierarchy per controller): ``memory.limit_in_bytes`` (and
  ``memory.memsw.limit_in_bytes``, no swap, where swap is accounted) in the ``memory``
  hierarchy, ``pids.max`` in the ``pids`` hierarchy where that one is writable too.

A child joins it between fork and exec (:meth:`TreeLimit.enter`), so everything it starts is
inside from the first instruction. When the tree needs more, the kernel's OOM killer ends one of
its processes; :meth:`TreeLimit.oom_kills` counts those, so the grader can say that the memory
limit was hit. :meth:`TreeLimit.close` ends whatever is left and removes the cgroup. Where no
cgroup can be created, :func:`open_tree_limit` says why, and the grader says so in its report.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")
PROC_MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass
class TreeLimit:
    """A cgroup (v1: one per hierarchy) that holds one grading's children and all they start."""

    version: int  # 1 or 2
    memory: Path  # the folder of the cgroup that bounds memory
    memory_bytes: int
    pids: Path | None = None  # v1: the pids hierarchy's folder, where it was writable (v2: ``memory`` itself)
    max_processes: int | None = None  # None: no process limit for the tree here (RLIMIT_NPROC still holds)
    folders: list[Path] = field(default_factory=list)  # every cgroup folder made: joined, emptied, removed

    def describe(self) -> str:
        """One line for the report: what holds for the whole tree."""
        processes = f", {self.max_processes} processes and threads" if self.max_processes else ""
        return (f"{self.memory_bytes / (1 << 30):.1f} GiB of memory{processes} for the whole process tree "
                f"(cgroup v{self.version})")

    def enter(self) -> None:
        """Move the calling process into the cgroup (called in the child between fork and exec:
        what it starts stays inside)."""
        pid = str(os.getpid()).encode()
        for folder in self.folders:
            fd = os.open(folder / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def oom_kills(self) -> int:
        """How many processes the kernel has ended in this cgroup for want of memory."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def processes(self) -> list[int]:
        """The ids of every process still in the cgroup."""
        found: set[int] = set()
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(line) for line in (folder / "cgroup.procs").read_text().split())
        return sorted(found)

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup (a process killed cannot fork again: this converges)."""
        kill = self.memory / "cgroup.kill"  # v2, Linux 5.14+: the whole cgroup at once
        if self.version == 2 and kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")
        for _ in range(100):
            left = self.processes()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def close(self) -> None:
        """End whatever is left in the cgroup and remove it."""
        self.kill_all()
        for folder in reversed(self.folders):
            for _ in range(50):  # a killed process leaves the cgroup a moment after it dies
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _own_cgroups(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controller: path}: v1 lines name their controllers, the v2 line
    (``0::/path``) is under the key ""."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                own[controller] = parts[2]
    return own


def _mounts(text: str) -> list[tuple[str, Path, str, set[str]]]:
    """The cgroup mounts in ``/proc/self/mountinfo``: (root in the hierarchy, mount point,
    "cgroup" or "cgroup2", the v1 controllers its options name)."""
    found = []
    for line in text.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in {"cgroup", "cgroup2"}:
            found.append((fields[3], Path(fields[4].replace("\\040", " ")), tail[0], set(tail[2].split(","))))
    return found


def _folder(mounts: list[tuple[str, Path, str, set[str]]], kind: str, controller: str, path: str) -> Path | None:
    """Where the cgroup at ``path`` of the hierarchy with ``controller`` (v2: "") is visible here."""
    for root, point, fstype, options in mounts:
        if fstype != kind or (kind == "cgroup" and controller not in options):
            continue
        if root == "/" or path == root or path.startswith(root.rstrip("/") + "/"):
            relative = path[len(root):] if root != "/" else path
            folder = point / relative.lstrip("/")
            if folder.is_dir():
                return folder
    return None


def _new_child(parent: Path) -> Path:
    """A new cgroup below ``parent``, named for this process; the empty ones of graders that died
    without removing theirs (SIGKILL) are removed on the way."""
    for stale in parent.glob("course-grade-*-*"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(stale.name.split("-")[2])
            if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
                stale.rmdir()  # refused (EBUSY) while a process is still inside: then it stays
    folder = parent / f"course-grade-{os.getpid()}-{secrets.token_hex(4)}"
    folder.mkdir(mode=0o755)
    return folder


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _try_v2(own: dict[str, str], mounts: list, memory_bytes: int, max_processes: int) -> tuple[TreeLimit | None, str]:
    if "" not in own:
        return None, "no cgroup v2 hierarchy"
    parent = _folder(mounts, "cgroup2", "", own[""])
    if parent is None:
        return None, "the grader's cgroup v2 is not mounted here"
    if not os.access(parent, os.W_OK):
        return None, f"{parent} is not writable"
    enabled = set((parent / "cgroup.subtree_control").read_text().split()) if (
        parent / "cgroup.subtree_control").exists() else set()
    if "memory" not in enabled:
        available = set((parent / "cgroup.controllers").read_text().split()) if (
            parent / "cgroup.controllers").exists() else set()
        if "memory" not in available:
            return None, f"the memory controller is not available in {parent} (cgroup v2)"
        wanted = " ".join(f"+{name}" for name in ("memory", "pids") if name in available)
        if not _write(parent / "cgroup.subtree_control", wanted):
            return None, (f"{parent} (cgroup v2) holds processes and does not hand the memory controller to its "
                          "children (its cgroup.subtree_control)")
    try:
        folder = _new_child(parent)
    except OSError as error:
        return None, f"cannot create a cgroup in {parent}: {error.strerror}"
    limit = TreeLimit(version=2, memory=folder, memory_bytes=memory_bytes, folders=[folder])
    if not _write(folder / "memory.max", str(memory_bytes)):
        limit.close()
        return None, f"cannot set memory.max in {folder}"
    _write(folder / "memory.swap.max", "0")  # absent without swap accounting: RAM is the bound then
    if _write(folder / "pids.max", str(max_processes)):
        limit.pids, limit.max_processes = folder, max_processes
    return limit, ""


def _try_v1(own: dict[str, str], mounts: list, memory_bytes: int, max_processes: int) -> tuple[TreeLimit | None, str]:
    if "memory" not in own:
        return None, "no cgroup v1 memory controller"
    parent = _folder(mounts, "cgroup", "memory", own["memory"])
    if parent is None:
        return None, "the grader's cgroup v1 memory controller is not mounted here"
    try:
        folder = _new_child(parent)
    except OSError as error:
        return None, f"cannot create a cgroup in {parent} (cgroup v1): {error.strerror}"
    limit = TreeLimit(version=1, memory=folder, memory_bytes=memory_bytes, folders=[folder])
    if not _write(folder / "memory.limit_in_bytes", str(memory_bytes)):
        limit.close()
        return None, f"cannot set memory.limit_in_bytes in {folder}"
    _write(folder / "memory.memsw.limit_in_bytes", str(memory_bytes))  # memory plus swap: no swap
    pids_parent = _folder(mounts, "cgroup", "pids", own["pids"]) if "pids" in own else None
    if pids_parent is not None:
        with contextlib.suppress(OSError):
            pids = _new_child(pids_parent)
            limit.folders.append(pids)
            if _write(pids / "pids.max", str(max_processes)):
                limit.pids, limit.max_processes = pids, max_processes
    return limit, ""


def open_tree_limit(memory_bytes: int, max_processes: int) -> tuple[TreeLimit | None, str]:
    """A new cgroup bounding memory (and, where it can, processes) for a whole process tree, or
    None and why not (no cgroup mounted, none writable, no memory controller to hand on)."""
    try:
        own = _own_cgroups(PROC_CGROUP.read_text())
        mounts = _mounts(PROC_MOUNTINFO.read_text())
    except OSError as error:
        return None, f"cannot read this process's cgroups: {error}"
    reasons = []
    for attempt in (_try_v2, _try_v1):
        try:
            limit, why = attempt(own, mounts, memory_bytes, max_processes)
        except OSError as error:
            limit, why = None, str(error)
        if limit is not None:
            return limit, ""
        reasons.append(why)
    return None, "; ".join(reasons)


def tree_limit_problem() -> str:
    """Why no cgroup can bound a process tree here ("" when one can: it is made and removed)."""
    limit, why = open_tree_limit(1 << 30, 64)
    if limit is not None:
        limit.close()
    return why
