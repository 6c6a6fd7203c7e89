"""The sandbox: where a submission's tests run, as whom, with what limits, and how it is ended.

- **Where.** A fresh folder under the system temp folder, outside the instructor's checkout,
  holding ``course/`` (the grading copy, see ``prepare.py``), ``home/`` (the child's ``HOME``,
  ``TMPDIR`` and caches) and ``records/`` (the results files). It is deleted afterwards.
- **As whom.** When the grader runs as root (Gradescope's autograder does), each child runs as
  an unprivileged user id of its own, with no supplementary groups: the grading copy, the
  virtual environment and the instructor's course are read-only to it (they belong to root), and
  only ``home/`` and ``records/`` are its own. ``$COURSE_GRADE_UID`` picks the id; by default an
  id that no account and no process uses is chosen, so ending "every process of that user"
  ends only what the submission started. As any other user, the child runs as that user: the
  grader then detects changes to the copy (``integrity.py``) but cannot prevent them.
- **Limits.** Its own session and process group (``setsid``); ``RLIMIT_DATA`` (heap and
  anonymous memory, so a runaway allocation fails with MemoryError instead of taking the
  machine; unlike ``RLIMIT_AS`` it leaves CUDA's address-space reservations alone),
  ``RLIMIT_NPROC`` (no fork bomb), ``RLIMIT_FSIZE`` and no core files. Per process, not per group:
  cgroups would bound the whole tree, but need privileges a container rarely grants.
- **The end.** After each child: SIGKILL to its process group, then, for a user id of its own,
  to every process of that user (which also ends what escaped the group with ``setsid``).
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GiB = 1 << 30
UID_ENV = "COURSE_GRADE_UID"
MEMORY_ENV = "COURSE_GRADE_MEMORY_GB"
FREE_UIDS = range(61000, 61999)  # below 65534 (nobody): mapped in a container's user namespace
MAX_PROCESSES = 1024  # threads count too: torch and tokenizers start one per core
MAX_FILE_BYTES = 4 * GiB


def default_memory_bytes() -> int:
    """``$COURSE_GRADE_MEMORY_GB``, else three quarters of this machine's memory."""
    if os.environ.get(MEMORY_ENV):
        return int(float(os.environ[MEMORY_ENV]) * GiB)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * GiB
    return max(4 * GiB, total * 3 // 4)


def _uids_in_use() -> set[int]:
    return {owner for _, owner in _processes()}


def choose_uid() -> int:
    """A user id for the child: ``$COURSE_GRADE_UID``, else one no account and no process uses."""
    if os.environ.get(UID_ENV):
        return int(os.environ[UID_ENV])
    import pwd

    taken = {entry.pw_uid for entry in pwd.getpwall()} | _uids_in_use()
    free = [uid for uid in FREE_UIDS if uid not in taken]
    if not free:
        raise RuntimeError(f"no free user id in {FREE_UIDS.start}-{FREE_UIDS.stop}; set ${UID_ENV}")
    return random.choice(free)


@dataclass
class Sandbox:
    folder: Path
    uid: int | None  # None: the child runs as the grader's own user
    memory_bytes: int
    fixture_cache: Path  # the child's $COURSE_CACHE_DIR (built fixture models)

    @property
    def course(self) -> Path:
        return self.folder / "course"

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def records(self) -> Path:
        return self.folder / "records"


    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The child's environment: ``base`` with a home, temp and cache folders of its own."""
        env = dict(base)
        cache = self.home / "cache"
        env.update(HOME=str(self.home), TMPDIR=str(self.home / "tmp"), XDG_CACHE_HOME=str(cache),
                   HF_HOME=str(cache / "huggingface"), TORCHINDUCTOR_CACHE_DIR=str(cache / "inductor"),
                   MPLCONFIGDIR=str(cache / "matplotlib"), HYPOTHESIS_STORAGE_DIRECTORY=str(cache / "hypothesis"),
                   USER="course-grader", LOGNAME="course-grader",
                   COURSE_CACHE_DIR=str(self.fixture_cache))
        return env

    def _limits(self) -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_DATA, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.uid is not None:  # per user: only meaningful for a user id of its own
            resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))

    def start(self, command: list[str], cwd: Path, env: dict[str, str], output: Path) -> subprocess.Popen:
        """Start ``command`` in the sandbox; its stdout and stderr go to ``output``."""
        as_user = {} if self.uid is None else {"user": self.uid, "group": self.uid, "extra_groups": []}
        with open(output, "wb") as sink:
            return subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=self._limits, **as_user)

    def stop(self, process: subprocess.Popen) -> None:
        """End ``process``, its group, and (for a user id of its own) every process of that user."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if self.uid is not None:
            # kill(-1) as that user reaches every process it owns, and on Linux not the caller.
            _kill_every_process_of(self.uid)

    def readable_by_child(self, path: Path) -> bool:
        """Can the child's user read ``path``? (Always true for the grader's own user.)"""
        if self.uid is None:
            return True
        check = subprocess.run([sys.executable, "-c", "import os, sys\nsys.exit(0 if os.access(sys.argv[1], "
                                "os.R_OK | os.X_OK) else 1)", str(path)], user=self.uid, group=self.uid,
                               extra_groups=[], stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                               check=False)
        return check.returncode == 0


def can_run_as(uid: int, cwd: Path) -> bool:
    """Can user ``uid`` start this interpreter and import pytest? Not when Python or the virtual
    environment lives in a folder other users cannot enter (a pyenv under /root, say)."""
    try:
        check = subprocess.run([sys.executable, "-c", "import pytest"], user=uid, group=uid, extra_groups=[],
                               cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return check.returncode == 0


def separate_user_available() -> bool:
    """Would a grading here run the graded code as a user of its own? (Root, and an interpreter
    that user can run.)"""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o755)
        return can_run_as(choose_uid(), Path(folder))


def _kill_every_process_of(uid: int) -> None:
    """SIGKILL every process of ``uid``: kill(-1) as that user reaches all it owns at once (and on
    Linux not the caller itself); then, from here, whatever /proc still lists for that user (the
    helper cannot start when a fork bomb holds the user's process limit)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([sys.executable, "-c", "import os, signal\ntry:\n os.kill(-1, signal.SIGKILL)\n"
                        "except ProcessLookupError:\n pass"], user=uid, group=uid, extra_groups=[],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
    for _ in range(50):  # processes killed cannot fork again: this converges
        left = [pid for pid, owner in _processes() if owner == uid]
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _processes() -> list[tuple[int, int]]:
    """(pid, real user id) of every process /proc lists."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    found.append((int(status.parent.name), int(line.split()[1])))
                    break
    return found


def _share_fixture_cache(source: Path, target: Path, uid: int) -> None:
    """Give the child the fixture models already built, read-only: hard links (or copies) of
    the grader's cache in a folder the child owns, so it can still build a missing one there."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()) if source.is_dir() else []:
        if entry.name.startswith(".") or not entry.is_dir():
            continue  # locks and half-built folders
        shutil.copytree(entry, target / entry.name, copy_function=_link_or_copy, dirs_exist_ok=True)
    for folder in [target, *(path for path in target.rglob("*") if path.is_dir())]:
        folder.chmod(0o755)  # a fixture is built in a mkdtemp folder: 700
    os.chown(target, uid, uid)


def _link_or_copy(source: str, target: str) -> None:
    """A hard link when every user may read ``source`` (the link cannot be written by the child),
    else a copy that every user may read."""
    if os.stat(source).st_mode & 0o004:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)
    os.chmod(target, 0o644)


@contextlib.contextmanager
def open_sandbox(course_root: Path, *, other_user: bool = True, memory_bytes: int | None = None) -> Iterator[Sandbox]:
    """A fresh sandbox folder (see the module docstring), deleted on exit. ``other_user=False``
    keeps the child as the grader's own user (grading the course itself: trusted code that may
    live where no other user can read it)."""
    folder = Path(tempfile.mkdtemp(prefix="course-grade-")).resolve()
    course_root = Path(course_root).resolve()
    if folder == course_root or course_root in folder.parents:
        raise RuntimeError(f"the system temp folder {folder.parent} lies inside the course {course_root}")
    uid = choose_uid() if other_user and os.geteuid() == 0 else None
    if uid is not None and not can_run_as(uid, folder):
        uid = None  # this interpreter lives where other users cannot reach it: say so, run as we are
    from ..paths import cache_dir

    box = Sandbox(folder=folder, uid=uid, memory_bytes=memory_bytes or default_memory_bytes(),
                  fixture_cache=cache_dir() if uid is None else folder / "home" / "course-cache")
    try:
        folder.chmod(0o755)  # the child must reach course/ (read-only to it) and its own folders
        for own in (box.home, box.home / "tmp", box.records):
            own.mkdir(parents=True)
            if uid is not None:
                os.chown(own, uid, uid)
            own.chmod(0o700)
        if uid is not None:
            _share_fixture_cache(cache_dir(), box.fixture_cache, uid)
        yield box
    finally:
        if uid is not None:  # anything still running as that user
            with contextlib.suppress(Exception):
                _kill_every_process_of(uid)
        shutil.rmtree(folder, ignore_errors=True)
