"""``course mutants``: do a lab's tests catch plausible wrong answers?

Each lab keeps, instructor-only, a list of small edits to its reference solution, each modelling a
mistake a student could plausibly make (an off-by-one, a boundary token kept, a wrong axis, a
write into an input, an unusual but valid convention ignored)::

    # labNN_*/instructor/mutants.py  (any instructor/mutants*.py file; all are read)
    MUTANTS = [
        {"task": 4, "file": "sampling.py",
         "find": "sorted_logits.softmax(dim=-1).cumsum(dim=-1)",
         "replace": "sorted_logits.softmax(dim=0).cumsum(dim=-1)",
         "why": "softmax over the batch axis instead of the vocabulary"},
    ]

``find`` must occur exactly once in ``solution/<file>``. For each mutant, a scratch copy of the
course gets the edit, and that task's tests (hidden ones included) run against it with
``--impl solution``. A mutant is *caught* when at least one of them fails; it *survives* when
all pass. A lab's tests are good enough when ≥ 90 % are caught; the survivors are listed in the
lab's ``instructor/NOTES.md`` with why they are acceptable.
"""

from __future__ import annotations

import ast
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
COPY_IGNORED = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.pyc", ".pytest_cache",
                                      ".ruff_cache", ".hypothesis", "*.egg-info", "build", "dist")
FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


class MutantError(ValueError):
    """A mutants file that cannot be used as written."""


@dataclass(frozen=True)
class Mutant:
    """One plausible mistake: replace ``find`` by ``replace`` in ``solution/<file>``."""

    name: str  # "mutants.py#3": the file it is listed in and its position there
    task: int
    file: str
    find: str
    replace: str
    why: str


@dataclass
class MutantResult:
    mutant: Mutant
    outcome: str  # caught | survived | error
    detail: str  # the first failing test, or what went wrong
    seconds: float


def mutant_files(lab_dir: Path) -> list[Path]:
    return sorted((lab_dir / "instructor").glob("mutants*.py"))


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


def load_mutants(lab_dir: Path) -> list[Mutant]:
    """Every mutant of a lab, checked against its solution.

    Raises:
        MutantError: naming the file, the entry and what is wrong with it (a missing field, a
            ``find`` that does not occur exactly once, an edit that changes nothing).
    """
    mutants = []
    for path in mutant_files(lab_dir):
        entries = _literal_mutants(path)
        if not isinstance(entries, list):
            raise MutantError(f"{path}: MUTANTS must be a list")
        for index, entry in enumerate(entries, start=1):
            where = f"{path.relative_to(lab_dir.parent)} entry {index}"
            if not isinstance(entry, dict):
                raise MutantError(f"{where}: expected a dict with {', '.join(FIELDS)}")
            for field, kind in FIELDS.items():
                if not isinstance(entry.get(field), kind):
                    raise MutantError(f"{where}: field {field!r} must be a {kind.__name__}")
            unknown = set(entry) - set(FIELDS)
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
            mutants.append(Mutant(name=f"{path.name}#{index}", **{k: entry[k] for k in FIELDS}))
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
    """Run every mutant in one scratch copy of the course; see the module docstring.

    Raises:
        MutantError: when the unmutated solution fails its own tests (checked first).
    """
    results = []
    with scratch_course(root) as copy:
        if check_baseline:
            problems = baseline_problems(copy, lab_dir.name, sorted({m.task for m in mutants}), timeout, extra)
            if problems:
                raise MutantError("\n".join(problems))
        for mutant in mutants:
            result = run_mutant(copy, lab_dir.name, mutant, timeout=timeout, extra=extra)
            results.append(result)
            if on_result:
                on_result(result)
    return results
