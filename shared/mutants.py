"""``course mutants``: do a lab's tests catch plausible wrong answers?

Each lab keeps, instructor-only, a list of small edits to its reference solution, each modelling a
mistake a student could plausibly make (an off-by-one, a boundary token kept, a wrong axis, a
write into an input, an unusual but valid convention ignored)::

    # labNN_*/instructor/mutants.py  (any instructor/mutants*.py file; all are read)
    MUTANTS = [
        {"task": 4, "file": "sampling.py",
         "find": "sorted_logits.softmax(dim=-1).cumsum(dim=-1)",
         "replace": "sorted_logits.softmax(dim=0).cumsum(dim=-1)",
         "why": "softmax over the batch axis instead of the vocabulary",
         "check": ">>> top_p_filter(torch.tensor([[0.0, 1.0], [5.0, 0.0]]), 0.5)  # keeps both tokens of row 0"},
    ]

``find`` must occur exactly once in ``solution/<file>``. ``check`` is optional: the direct check
that shows the mutant really wrong (not equivalent to the reference), so that a survivor can be
judged without rerunning anything. It is prose ("llama.cpp refuses the written file: ...") or a
doctest-style snippet whose ``>>>`` / ``...`` lines must be valid Python (checked when the file is
loaded); it is printed as written. ``why`` and ``check`` are printed verbatim (square brackets
included).

Each mutant runs in its own fresh scratch copy of the course (no ``.git``, no ``.venv``) with a
fresh Hypothesis example database, so that nothing an earlier mutant left behind (a failing
example Hypothesis would replay, a file a test wrote) can decide a later one. In that copy, that
task's tests (hidden ones included) run against the edited solution with ``--impl solution``. A
mutant is *caught* when at least one of them fails; it *survives* when all pass. A lab's tests
are good enough when ≥ 90 % are caught; the survivors are listed in the lab's
``instructor/NOTES.md`` with why they are acceptable.

Which files: ``course mutants LAB`` reads the lab's own lists, ``instructor/mutants*.py`` (CI
samples from these). A blind-review round, written by someone who has not read the tests, lives in
``instructor/blind/roundK.py`` in the same format; the default glob does not pick it up, and
``course mutants LAB --file LAB/instructor/blind/round1.py`` runs one file's mutants only. Every
run records its outcomes in ``instructor/mutant-results.json`` (by mutant name, with a hash of the
edit so that a changed mutant's old outcome is not reused); ``course mutants LAB --list-survivors``
prints each recorded survivor with its mistake and its check, without running anything.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .paths import ROOT

FIELDS = {"task": int, "file": str, "find": str, "replace": str, "why": str}
OPTIONAL_FIELDS = {"check": str}
RESULTS_FILE = "mutant-results.json"  # under the lab's instructor/
COPY_IGNORED = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.pyc", ".pytest_cache",
                                      ".ruff_cache", ".hypothesis", "*.egg-info", "build", "dist")
FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


class MutantError(ValueError):
    """A mutants file that cannot be used as written."""


@dataclass(frozen=True)
class Mutant:
    """One plausible mistake: replace ``find`` by ``replace`` in ``solution/<file>``."""

    name: str  # "mutants.py#3", "blind/round1.py#3": its file under instructor/ and its position there
    task: int
    file: str
    find: str
    replace: str
    why: str
    check: str = ""  # the direct check that shows the mistake wrong (prose or a >>> snippet)

    @property
    def edit_hash(self) -> str:
        """A short hash of what the mutant does: a recorded outcome is reused only for the same edit."""
        text = json.dumps([self.task, self.file, self.find, self.replace])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class MutantResult:
    mutant: Mutant
    outcome: str  # caught | survived | error
    detail: str  # the first failing test, or what went wrong
    seconds: float


def mutant_files(lab_dir: Path) -> list[Path]:
    """The lab's own mutant lists, ``instructor/mutants*.py`` (not the blind rounds in
    ``instructor/blind/``: those run with ``--file``)."""
    return sorted((lab_dir / "instructor").glob("mutants*.py"))


def _check_snippet(where: str, check: str) -> None:
    """A ``>>>`` snippet in a mutant's ``check`` must be valid Python (prose is taken as is)."""
    code = [line.strip()[4:] for line in check.splitlines() if line.strip().startswith((">>> ", "... "))]
    if not code:
        return
    try:
        ast.parse("\n".join(code))
    except SyntaxError as error:
        raise MutantError(f"{where}: the 'check' snippet is not valid Python ({error.msg}, "
                          f"snippet line {error.lineno})") from None


def _literal_mutants(path: Path) -> list:
    """The ``MUTANTS`` list of a mutants file, read as a literal (the file is never executed)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "MUTANTS" for t in targets) and node.value is not None:
            try:
                return ast.literal_eval(node.value)
            except ValueError as error:
                raise MutantError(f"{path}: MUTANTS must be a literal list of dicts ({error})") from None
    raise MutantError(f"{path}: no MUTANTS = [...] list found")


def load_mutants(lab_dir: Path, files: list[Path] | None = None) -> list[Mutant]:
    """Every mutant of a lab (or of ``files``, each under the lab's ``instructor/``), checked
    against its solution.

    Args:
        lab_dir: the lab folder.
        files: mutant files to read instead of :func:`mutant_files` (a blind round, say).

    Raises:
        MutantError: naming the file, the entry and what is wrong with it (a missing field, a
            ``find`` that does not occur exactly once, an edit that changes nothing, a ``check``
            snippet that is not Python), or a file outside the lab's ``instructor/``.
    """
    instructor = (lab_dir / "instructor").resolve()
    mutants = []
    for path in mutant_files(lab_dir) if files is None else files:
        path = Path(path).resolve()
        if instructor not in path.parents:
            raise MutantError(f"{path}: mutant files live under {lab_dir.name}/instructor/")
        if not path.is_file():
            raise MutantError(f"{path}: no such file")
        entries = _literal_mutants(path)
        if not isinstance(entries, list):
            raise MutantError(f"{path}: MUTANTS must be a list")
        for index, entry in enumerate(entries, start=1):
            where = f"{path.relative_to(lab_dir.parent.resolve())} entry {index}"
            if not isinstance(entry, dict):
                raise MutantError(f"{where}: expected a dict with {', '.join(FIELDS)}")
            for field, kind in FIELDS.items():
                if not isinstance(entry.get(field), kind):
                    raise MutantError(f"{where}: field {field!r} must be a {kind.__name__}")
            for field, kind in OPTIONAL_FIELDS.items():
                if field in entry and not isinstance(entry[field], kind):
                    raise MutantError(f"{where}: field {field!r} must be a {kind.__name__}")
            _check_snippet(where, entry.get("check", ""))
            unknown = set(entry) - set(FIELDS) - set(OPTIONAL_FIELDS)
            if unknown:
                raise MutantError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
            source_path = lab_dir / "solution" / entry["file"]
            if not source_path.is_file():
                raise MutantError(f"{where}: solution/{entry['file']} does not exist")
            count = source_path.read_text(encoding="utf-8").count(entry["find"])
            if count != 1:
                raise MutantError(f"{where}: 'find' occurs {count} times in solution/{entry['file']} "
                                  "(it must occur exactly once)")
            if entry["find"] == entry["replace"]:
                raise MutantError(f"{where}: 'replace' equals 'find', so nothing changes")
            mutants.append(Mutant(name=f"{path.relative_to(instructor).as_posix()}#{index}",
                                  check=entry.get("check", ""), **{k: entry[k] for k in FIELDS}))
    return mutants


@contextmanager
def scratch_course(root: Path = ROOT) -> Iterator[Path]:
    """A throwaway copy of the course to mutate (no .git, no .venv)."""
    folder = Path(tempfile.mkdtemp(prefix="course-mutants-"))
    try:
        copy = folder / "course"
        shutil.copytree(root, copy, ignore=COPY_IGNORED)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_tests(copy: Path, lab: str, task: int, timeout: float, extra: list[str]) -> tuple[int | None, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH", "")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # The copy's own example database, never one shared with another run (see the module docstring).
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(copy / ".hypothesis")
    command = [sys.executable, "-m", "pytest", f"{lab}/tests", "--impl=solution", f"--task={task}", "-x", "-q",
               "-rfE", "--no-header", "-p", "no:cacheprovider", *extra]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"the tests ran past {timeout:.0f} s"
    return done.returncode, done.stdout + done.stderr


def run_mutant(copy: Path, lab: str, mutant: Mutant, *, timeout: float = 600.0,
               extra: list[str] | None = None) -> MutantResult:
    """Apply one mutant to the scratch copy, run its task's tests, and put the file back."""
    path = copy / lab / "solution" / mutant.file
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace(mutant.find, mutant.replace, 1), encoding="utf-8")
    started = time.monotonic()
    try:
        code, output = _run_tests(copy, lab, mutant.task, timeout, extra or [])
    finally:
        path.write_text(original, encoding="utf-8")
    seconds = time.monotonic() - started
    if code is None:  # a hang the tests' own time limits missed is still a loss of points
        return MutantResult(mutant, "caught", output, seconds)
    if code == 0:
        return MutantResult(mutant, "survived", "every test of the task passed", seconds)
    if code == 1:
        failed = FAILED_LINE.findall(output)
        return MutantResult(mutant, "caught", failed[0] if failed else "a test failed", seconds)
    if code == 5:
        return MutantResult(mutant, "error", f"task {mutant.task} has no tests", seconds)
    tail = "\n".join(output.strip().splitlines()[-5:])
    return MutantResult(mutant, "error", f"pytest exited with code {code}: {tail}", seconds)


def baseline_problems(copy: Path, lab: str, tasks: list[int], timeout: float,
                      extra: list[str] | None = None) -> list[str]:
    """Each task's tests must pass on the unmutated solution, or no mutant result means anything."""
    problems = []
    for task in tasks:
        code, output = _run_tests(copy, lab, task, timeout, extra or [])
        if code != 0:
            failed = FAILED_LINE.findall(output or "")
            problems.append(f"task {task}: the unmutated solution does not pass its tests "
                            f"({failed[0] if failed else f'exit code {code}'})")
    return problems


def run_mutants(lab_dir: Path, mutants: list[Mutant], *, timeout: float = 600.0, root: Path = ROOT,
                extra: list[str] | None = None, check_baseline: bool = True,
                on_result: Callable[[MutantResult], None] | None = None) -> list[MutantResult]:
    """Run every mutant, each in a fresh scratch copy of the course; see the module docstring.
    The outcomes are recorded in the lab's ``instructor/mutant-results.json`` as they come.

    Raises:
        MutantError: when the unmutated solution fails its own tests (checked first).
    """
    results = []
    if check_baseline:
        with scratch_course(root) as copy:
            problems = baseline_problems(copy, lab_dir.name, sorted({m.task for m in mutants}), timeout, extra)
        if problems:
            raise MutantError("\n".join(problems))
    for mutant in mutants:
        with scratch_course(root) as copy:
            result = run_mutant(copy, lab_dir.name, mutant, timeout=timeout, extra=extra)
        results.append(result)
        record_results(lab_dir, [result])
        if on_result:
            on_result(result)
    return results


def results_path(lab_dir: Path) -> Path:
    return lab_dir / "instructor" / RESULTS_FILE


def record_results(lab_dir: Path, results: list[MutantResult]) -> None:
    """Merge ``results`` into the lab's recorded outcomes (one entry per mutant name)."""
    path = results_path(lab_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _results_locked(path):  # two runs on one lab (other tasks, other files) both keep theirs
        _merge_results(path, results)


@contextmanager
def _results_locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: the atomic replace alone keeps the file whole
        yield
        return
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]  # no lock file in the course
    with open(Path(tempfile.gettempdir()) / f"course-mutant-results-{key}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _merge_results(path: Path, results: list[MutantResult]) -> None:
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    for result in results:
        recorded[result.mutant.name] = {
            "edit": result.mutant.edit_hash, "outcome": result.outcome, "detail": result.detail[:500],
            "seconds": round(result.seconds, 1), "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    text = json.dumps(dict(sorted(recorded.items())), indent=1, ensure_ascii=False) + "\n"
    partial = path.with_suffix(".json.part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)  # a reader (or a run beside this one) never sees half a file


def recorded_results(lab_dir: Path, mutants: list[Mutant]) -> tuple[list[MutantResult], list[Mutant]]:
    """The recorded outcomes of ``mutants`` whose edit is unchanged, and the mutants without one."""
    try:
        recorded = json.loads(results_path(lab_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    found, missing = [], []
    for mutant in mutants:
        entry = recorded.get(mutant.name)
        if isinstance(entry, dict) and entry.get("edit") == mutant.edit_hash:
            found.append(MutantResult(mutant, str(entry.get("outcome")), str(entry.get("detail", "")),
                                      float(entry.get("seconds", 0.0))))
        else:
            missing.append(mutant)
    return found, missing
