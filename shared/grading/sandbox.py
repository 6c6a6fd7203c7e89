"""The sandbox: where a submission's tests run, as whom, with what limits, and how it is ended.

- **Bubblewrap first.** Where Debian's ``bubblewrap`` is installed (``apt-get install -y
  bubblewrap``; CI installs it), each child runs under ``bwrap`` in namespaces of its own: a
  private PID namespace (nothing it starts outlives the run: when the child's ``bwrap`` dies, the
  kernel ends every process in it), no network, a private ``/tmp``, and a file system that holds
  only the system folders (``/usr``, ``/etc``...), the interpreter and its site-packages, the
  grading copy (all read-only) and the child's own scratch folder. No other checkout of the
  course, no other submission's copy and no results file is visible to it. As root, ``bwrap``
  runs without a user namespace and ``setpriv`` then drops the child to a user id of its own with
  no capabilities; as any other user, ``bwrap`` uses an unprivileged user namespace.
- **The fallback, said loudly.** ``bwrap`` is probed once per grading process, starting the
  interpreter with the very flags a child gets. Where it is missing or cannot start (installed,
  but refused its namespaces: Docker without privileges, user namespaces off), or with
  ``$COURSE_GRADE_SANDBOX=user`` (to force it), the grader falls back to a user id of its own
  when it is root and the interpreter is readable by other users, else to the grader's own
  user, and the report carries a warning either way: what ``bwrap`` said and how to fix it.
- **Where.** A fresh folder under the system temp folder, outside the instructor's checkout,
  holding ``course/`` (the grading copy, see ``prepare.py``), ``home/`` (the child's ``HOME``,
  ``TMPDIR``, caches and a linked copy of the fixture models) and ``records/`` (the children's
  output files: created by the grader, for the grader only). It is deleted afterwards.
- **As whom.** ``$COURSE_GRADE_UID`` picks the child's user id; by default an id that no account
  and no process uses is chosen, so ending "every process of that user" ends only what the
  submission started.
- **Limits.** Its own session and process group. For the whole tree, where the machine allows
  it: a cgroup of its own (``limits.py``: memory, no swap, processes), which the child joins
  before it execs; where none can be created, the report says so and memory is bounded per
  process only. Per process: ``RLIMIT_DATA`` (heap and anonymous memory, so a runaway allocation
  fails with MemoryError instead of taking the machine; unlike ``RLIMIT_AS`` it leaves CUDA's
  address-space reservations alone), ``RLIMIT_FSIZE`` and no core files; ``RLIMIT_NPROC`` for the
  child's user id, which bounds its whole tree too (no fork bomb). Under bubblewrap, everything
  the child can write (``/tmp``, ``/dev/shm``, its home, the fixture models' folder) is a tmpfs
  of ``SCRATCH_BYTES`` each, charged to the cgroup's memory: no disk is written at all.
- **The end.** After each child: SIGKILL to its process group (``bwrap``'s PID namespace takes
  every process in it along), to every process left in its cgroup, then, for a user id of its
  own, to every process of that user; the cgroup is removed with the sandbox.
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
from dataclasses import dataclass, field
from pathlib import Path

from .limits import TreeLimit, open_tree_limit

GiB = 1 << 30
UID_ENV = "COURSE_GRADE_UID"
MEMORY_ENV = "COURSE_GRADE_MEMORY_GB"
FREE_UIDS = range(61000, 61999)  # below 65534 (nobody): mapped in a container's user namespace
MAX_PROCESSES = 1024  # threads count too: torch and tokenizers start one per core
MAX_FILE_BYTES = 4 * GiB
SCRATCH_BYTES = 4 * GiB  # each tmpfs the child may write under bubblewrap (with a cgroup: within its memory)


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


BWRAP = "bwrap"
SANDBOX_ENV = "COURSE_GRADE_SANDBOX"  # "user": skip bubblewrap (the fallback, for a broken bwrap)
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
#: Variables that would move a grade or tell the graded code it is graded: never passed on.
DROPPED_ENV = ("COURSE_MODEL", "COURSE_DRAFT_MODEL", UID_ENV, SANDBOX_ENV, MEMORY_ENV)


def interpreter_folders() -> list[Path]:
    """The folders this interpreter needs: its installation, the virtual environment and every
    site-packages folder (bound read-only into the sandbox, nothing else of their parents)."""
    import site
    import sysconfig

    candidates = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable)),
                  *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
                  *site.getsitepackages()}
    folders = sorted({Path(os.path.realpath(c)) for c in candidates if c and os.path.isdir(c)},
                     key=lambda path: len(path.parts))
    kept: list[Path] = []
    for folder in folders:  # a folder inside one already bound needs no bind of its own
        if not any(folder.is_relative_to(outer) for outer in kept):
            kept.append(folder)
    return kept


@dataclass
class Sandbox:
    folder: Path
    uid: int | None  # None: the child runs as the grader's own user
    memory_bytes: int
    fixture_cache: Path  # the child's $COURSE_CACHE_DIR (built fixture models)
    kind: str = "none"  # "bubblewrap", "user" (a user id of its own only) or "none" (the grader's own user)
    warnings: list[str] = field(default_factory=list)  # for the instructor: a weaker sandbox than wanted
    #: Under bubblewrap, where the child sees its scratch home and the fixture models: the grader's
    #: own ``$HOME`` and cache folder, so that its environment is the grader's (None: their paths).
    seen_home: Path | None = None
    seen_cache: Path | None = None
    tree: TreeLimit | None = None  # the cgroup that bounds the whole tree (None: per-process limits only)
    tree_problem: str = ""  # why there is none

    @property
    def limits_warning(self) -> str:
        """For the instructor, once: the memory limit holds per process only ("" when a cgroup holds it)."""
        if self.tree is not None or not self.tree_problem:
            return ""
        return (f"memory is limited per process only (RLIMIT_DATA, {self.memory_bytes / GiB:.1f} GiB each), not for "
                f"the graded code's whole process tree: no cgroup could be created ({self.tree_problem}), so N "
                "processes can together take N times that; run the grader as root where a cgroup memory controller "
                "is writable (cgroup v1, or v2 with the memory controller delegated; see the README)")

    def describe(self) -> str:
        """One line for the report: the sandbox and the limits that hold."""
        kind = {"bubblewrap": "bubblewrap (its own PID, network and IPC namespaces, read-only but for its tmpfs "
                              "scratch)",
                "user": "a user id of its own, without bubblewrap"}.get(self.kind, "the grader's own user, no sandbox")
        memory = (f"{self.tree.describe()}, and {self.memory_bytes / GiB:.1f} GiB per process"
                  if self.tree is not None else
                  f"memory {self.memory_bytes / GiB:.1f} GiB per process only (no cgroup)")
        if self.tree is not None and self.tree.max_processes:
            processes = ""
        elif self.uid is not None:
            processes = f"; {MAX_PROCESSES} processes and threads for its user id"
        else:
            processes = "; no process limit"
        disk = (f"; disk: none written, {SCRATCH_BYTES / GiB:.0f} GiB per tmpfs" + (" within that memory"
                                                                                      if self.tree else "")
                if self.kind == "bubblewrap" else f"; disk: {MAX_FILE_BYTES / GiB:.0f} GiB per file, no total")
        return f"{kind}; {memory}{processes}{disk}"

    @property
    def course(self) -> Path:
        return self.folder / "course"

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def records(self) -> Path:
        """The grader's own folder (0700, never visible to a child): its output files."""
        return self.folder / "records"

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The child's environment: ``base`` with a home, temp and cache folders of its own, less
        what would move a grade (``$COURSE_MODEL``: grading uses the fixture models)."""
        env = {key: value for key, value in base.items() if key not in DROPPED_ENV}
        if self.kind == "bubblewrap" and self.seen_home is not None:
            return env  # the scratch home and the fixture models sit where the grader's own are
        cache = self.home / "cache"
        env.update(HOME=str(self.home), TMPDIR=str(self.home / "tmp"), XDG_CACHE_HOME=str(cache),
                   HF_HOME=str(cache / "huggingface"), TORCHINDUCTOR_CACHE_DIR=str(cache / "inductor"),
                   MPLCONFIGDIR=str(cache / "matplotlib"), HYPOTHESIS_STORAGE_DIRECTORY=str(cache / "hypothesis"),
                   COURSE_CACHE_DIR=str(self.fixture_cache))
        return env

    def _limits(self) -> None:
        """Runs in the child between fork and exec: into the cgroup, the limits, then (without
        bubblewrap) the user id of its own, last, as joining the cgroup needs the grader's rights."""
        if self.tree is not None:
            self.tree.enter()
        resource.setrlimit(resource.RLIMIT_DATA, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.uid is not None:  # per user: only meaningful for a user id of its own
            resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
            if self.kind != "bubblewrap":  # (bubblewrap's setpriv drops it inside the sandbox)
                os.setgroups([])
                os.setresgid(self.uid, self.uid, self.uid)
                os.setresuid(self.uid, self.uid, self.uid)

    def wrap(self, command: list[str], cwd: Path) -> list[str]:
        """``command`` as this sandbox runs it (under ``bwrap`` and ``setpriv`` where it uses them)."""
        if self.kind != "bubblewrap":
            return command
        args = [shutil.which(BWRAP) or BWRAP, "--die-with-parent", "--new-session"]
        if os.geteuid() == 0:  # privileged bwrap, no user namespace: setpriv then drops to self.uid
            args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                     "--cap-drop", "ALL"]
            if self.uid is not None:  # only what setpriv needs; it drops them with the user id
                args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-all"]
        for top in SYSTEM_FOLDERS:
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        scratch = ["--size", str(SCRATCH_BYTES), "--perms", "1777", "--tmpfs"]  # what the child may write
        args += ["--proc", "/proc", "--dev", "/dev", "--ro-bind-try", "/sys", "/sys",
                 *scratch, "/tmp", *scratch, "/dev/shm"]
        for device in sorted(Path("/dev").glob("nvidia*")):  # the GPU, where there is one
            args += ["--dev-bind", str(device), str(device)]
        args += ["--remount-ro", "/dev"]  # in a user namespace, /dev's own tmpfs is the child's to write
        home, cache = self.seen_home or self.home, self.seen_cache or self.fixture_cache
        # (option, source, target); a tmpfs has no source. The scratch home and the fixture models'
        # folder are tmpfs (the child can still build a missing model there): no disk is written.
        mounts: list[tuple[str, Path | None, Path]] = [
            *(("--ro-bind", folder, folder) for folder in interpreter_folders()),
            ("--ro-bind", self.course, self.course), ("--tmpfs", None, home)]
        if self.seen_home is None:  # $TMPDIR names it
            mounts.append(("--dir", None, self.home / "tmp"))
        if self.fixture_cache.is_relative_to(self.home) and self.fixture_cache.is_dir():
            if cache != home:
                mounts.append(("--tmpfs", None, cache))
            mounts += [("--ro-bind", entry, cache / entry.name)  # hard links of the grader's: read-only
                       for entry in sorted(self.fixture_cache.iterdir())]
        made = {Path("/"), Path("/tmp")}
        for option, source, target in sorted(mounts, key=lambda mount: len(mount[2].parts)):  # outer first
            if not any(target.is_relative_to(top) for top in SYSTEM_FOLDERS):
                for parent in reversed(target.parents):  # bwrap would make them 0700, as root
                    if parent not in made:
                        made.add(parent)  # in the home, the child's to write; elsewhere not
                        args += ["--perms", "1777" if parent.is_relative_to(home) else "0755", "--dir", str(parent)]
            made.add(target)
            if option == "--tmpfs":
                args += [*scratch, str(target)]
            elif option == "--dir":
                args += ["--perms", "1777", "--dir", str(target)]
            else:
                args += [option, str(source), str(target)]
        args += ["--chdir", str(cwd), "--"]
        if os.geteuid() == 0 and self.uid is not None:
            args += [shutil.which("setpriv") or "setpriv", f"--reuid={self.uid}", f"--regid={self.uid}",
                     "--clear-groups", "--inh-caps=-all", "--"]
        return args + command

    def start(self, command: list[str], cwd: Path, env: dict[str, str], output: int,
              pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
        """Start ``command`` in the sandbox; its stdout and stderr go to the descriptor ``output``
        (a file the grader opened: the child never learns its path), ``pass_fds`` are inherited."""
        return subprocess.Popen(self.wrap(command, cwd), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=self._limits,
                                pass_fds=pass_fds)

    def stop(self, process: subprocess.Popen) -> None:
        """End ``process``, its group, and (for a user id of its own) every process of that user."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if self.tree is not None:  # whatever left the process group (setsid) is still in the cgroup
            self.tree.kill_all()
        if self.uid is not None:
            # kill(-1) as that user reaches every process it owns, and on Linux not the caller.
            _kill_every_process_of(self.uid)

    def runs(self, code: str, *args: str, cwd: Path | None = None) -> bool:
        """Does ``python -c code ARGS`` exit 0 in this sandbox (as the child would run)?"""
        return self.try_python(code, *args, cwd=cwd)[0]

    def try_python(self, code: str, *args: str, cwd: Path | None = None) -> tuple[bool, str]:
        """Run ``python -c code ARGS`` in this sandbox: did it exit 0, and the end of what it
        (or ``bwrap``, when the sandbox could not start) printed."""
        cwd = cwd or self.course
        as_user = {} if self.uid is None or self.kind == "bubblewrap" else {
            "user": self.uid, "group": self.uid, "extra_groups": []}
        try:
            check = subprocess.run(self.wrap([sys.executable, "-c", code, *args], cwd), cwd=cwd,
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False,
                                   env=self.env(dict(os.environ)), **as_user)
        except (OSError, subprocess.SubprocessError) as error:
            return False, str(error)
        said = (check.stderr or check.stdout).decode("utf-8", errors="replace").strip().splitlines()
        return check.returncode == 0, " ".join(said[-3:])[-400:]

    def readable_by_child(self, path: Path) -> bool:
        """Can the child read ``path``? (Always true for the grader's own user without bubblewrap.)"""
        if self.uid is None and self.kind != "bubblewrap":
            return True
        return self.runs("import os, sys\nsys.exit(0 if os.access(sys.argv[1], os.R_OK | os.X_OK) else 1)",
                         str(path))


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


def _share_fixture_cache(source: Path, target: Path, *, link: bool, owner: int | None) -> None:
    """Give the child the fixture models already built, in a folder it owns (``owner``), so it
    can still build a missing one there: hard links of the grader's cache where the child cannot
    write them (``link``: another user id, or bubblewrap's read-only binds), else copies."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()) if source.is_dir() else []:
        if entry.name.startswith(".") or not entry.is_dir():
            continue  # locks and half-built folders
        shutil.copytree(entry, target / entry.name, copy_function=_link_or_copy if link else _copy,
                        dirs_exist_ok=True)
    for folder in [target, *(path for path in target.rglob("*") if path.is_dir())]:
        folder.chmod(0o755)  # a fixture is built in a mkdtemp folder: 700
    if owner is not None:
        os.chown(target, owner, owner)


def _see_the_graders_home(box: Sandbox, cache: Path) -> None:
    """Under bubblewrap, show the scratch home at the grader's own ``$HOME`` and the fixture
    models at the grader's cache folder: the graded code's environment is then the grader's own
    (no ``$HOME`` or ``$TMPDIR`` of its own that says "graded"). Not where ``$HOME`` is the root,
    a system folder, or holds (or lies in) the sandbox's folder."""
    home = Path(os.path.expanduser("~")).resolve()
    if (home == Path("/") or not home.is_absolute() or any(home.is_relative_to(top) for top in SYSTEM_FOLDERS)
            or box.folder.is_relative_to(home) or home.is_relative_to(box.folder)):
        return
    cache = cache.resolve()
    if any(cache.is_relative_to(top) for top in SYSTEM_FOLDERS) or box.folder.is_relative_to(cache):
        return
    box.seen_home, box.seen_cache = home, cache


def _copy(source: str, target: str) -> None:
    shutil.copyfile(source, target)
    os.chmod(target, 0o644)


def _link_or_copy(source: str, target: str) -> None:
    """A hard link when every user may read ``source`` (the link cannot be written by the child),
    else a copy that every user may read."""
    if os.stat(source).st_mode & 0o004:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    _copy(source, target)


def bubblewrap_problem() -> str:
    """Why bubblewrap cannot be used here ("" when it can be tried)."""
    if os.environ.get(SANDBOX_ENV, "") == "user":
        return f"${SANDBOX_ENV}=user"
    if shutil.which(BWRAP) is None:
        return "bubblewrap is not installed (apt-get install -y bubblewrap)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    return ""


@contextlib.contextmanager
def open_sandbox(course_root: Path, *, other_user: bool = True, memory_bytes: int | None = None) -> Iterator[Sandbox]:
    """A fresh sandbox folder (see the module docstring), deleted on exit. ``other_user=False``
    keeps the child as the grader's own user, outside bubblewrap (grading the course itself:
    trusted code that may live where no other user can read it)."""
    folder = Path(tempfile.mkdtemp(prefix="course-grade-")).resolve()
    course_root = Path(course_root).resolve()
    if folder == course_root or course_root in folder.parents:
        raise RuntimeError(f"the system temp folder {folder.parent} lies inside the course {course_root}")
    from ..paths import cache_dir

    uid = choose_uid() if other_user and os.geteuid() == 0 else None
    box = Sandbox(folder=folder, uid=uid, memory_bytes=memory_bytes or default_memory_bytes(),
                  fixture_cache=cache_dir() if not other_user else folder / "home" / "course-cache")
    try:
        folder.chmod(0o755)  # the child must reach course/ (read-only to it) and home/
        box.records.mkdir(mode=0o700)
        box.course.mkdir(mode=0o755)
        for own in (box.home, box.home / "tmp"):
            own.mkdir()
            if uid is not None:
                os.chown(own, uid, uid)
            own.chmod(0o700)
        if other_user:
            _choose_kind(box)
            if box.kind == "bubblewrap":
                _see_the_graders_home(box, cache_dir())
            _share_fixture_cache(cache_dir(), box.fixture_cache, link=box.kind == "bubblewrap" or box.uid is not None,
                                 owner=box.uid)
            box.tree, box.tree_problem = open_tree_limit(box.memory_bytes, MAX_PROCESSES)
        yield box
    finally:
        if box.tree is not None:  # anything still in its cgroup; then the cgroup itself
            with contextlib.suppress(Exception):
                box.tree.close()
        if uid is not None:  # anything still running as that user
            with contextlib.suppress(Exception):
                _kill_every_process_of(uid)
        shutil.rmtree(folder, ignore_errors=True)


#: What :func:`_choose_kind` found, per (``bwrap``'s path, bubblewrap's problem, running as root):
#: a probe starts the interpreter in the sandbox, which is worth doing once per grading process only.
_KINDS: dict[tuple[str | None, str, bool], tuple[str, bool, list[str]]] = {}

#: How to let ``bwrap`` create its namespaces, for the warning when it cannot.
BWRAP_FIX = ("in Docker, run the container with --security-opt seccomp=unconfined --security-opt "
             "apparmor=unconfined --cap-add SYS_ADMIN (or --privileged), or use a privileged CI runner; as a user "
             "other than root, allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
             "user.max_user_namespaces > 0, on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0); "
             "see the README")


def _choose_kind(box: Sandbox) -> None:
    """Bubblewrap where it works; else a user id of its own; else none, with a warning."""
    key = (shutil.which(BWRAP), bubblewrap_problem(), box.uid is not None)
    if key not in _KINDS:
        _probe_kind(box)
        _KINDS[key] = (box.kind, box.uid is not None, list(box.warnings))
    kind, keeps_uid, warnings = _KINDS[key]
    box.kind, box.warnings = kind, list(warnings)
    if not keeps_uid:
        box.uid = None


def grading_sandbox_kind() -> str:
    """The sandbox a ``course grade --submission`` here would run the graded code in:
    "bubblewrap", "user" (a user id of its own only) or "none"."""
    from ..paths import ROOT

    with open_sandbox(ROOT) as box:
        return box.kind


def _probe_kind(box: Sandbox) -> None:
    problem = bubblewrap_problem()
    fix = ("unset it to use bubblewrap" if problem.startswith(f"${SANDBOX_ENV}") else
           "install bubblewrap (see the README)")
    if not problem:
        box.kind = "bubblewrap"  # the probe: the interpreter started with the very flags a child gets
        works, said = box.try_python("import pytest")
        if works:
            return
        problem = ("bwrap is installed but could not start this interpreter in its sandbox; it said: "
                   + (said or "nothing"))
        fix = "to fix: " + BWRAP_FIX
    if box.uid is not None:
        box.kind = "user"
        if box.runs("import pytest"):
            box.warnings.append(f"no bubblewrap sandbox ({problem}): falling back to a user id of its own, so the "
                                "graded code sees every file other users may read (other checkouts of the course "
                                f"included); {fix}")
            return
        box.warnings.append(f"the graded code runs as root, not as a user of its own: no other user can run "
                            f"this Python ({sys.executable}), and there is no bubblewrap sandbox ({problem}); "
                            f"{fix}, or install the course's Python where every user can read it (see the README)")
        box.uid = None
    else:
        box.warnings.append(f"no bubblewrap sandbox ({problem}): the graded code runs as the grader's own user and "
                            f"can read and write whatever it can; {fix}")
    box.kind = "none"
