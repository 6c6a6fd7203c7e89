"""Collect: what the course expects, decided before any student code exists in the copy.

A ``pytest --collect-only`` child runs in the course (or in the grading copy while its ``src/``
still holds the course's own skeleton) and writes one record per test: node id, task, points,
hidden, scaffold, the requirement marker's reason when this machine lacks a GPU or a framework,
and the test's time limit. Those records are the list the grader scores against: a graded
process can neither add a test nor change one's points. The plugin also reports any lab code a
collection imported (tests must import it lazily through ``shared.impl.lab_module``): such a
collection is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ..paths import ROOT, lab_dirs
from .results import TestResult

#: ``### Task K — Title (N points)``; the title may be absent (``### Task 13 (4 points)``) and the
#: parenthesis may go on after the points (``(2.5 points, needs vLLM)``).
TASK_HEADING = re.compile(r"^#{2,3}\s+Task\s+(\d+)(?:\s*[:.\u2014\-]+\s*(.+?))?\s*"
                          r"\((\d+(?:\.\d+)?)\s+points?\b[^)\n]*\)", re.M)
#: The README's points table announces the points of the hidden tests (absent from the student
#: edition) on its total rows: "9 are in hidden tests", "of which 7 are in hidden tests", "4 of them
#: in hidden tests".
HIDDEN_ANNOUNCED = re.compile(r"(\d+(?:\.\d+)?)\s+(?:of them\s+)?(?:are\s+)?in hidden tests")

#: Collection imports torch and every framework a lab's tests use: slow on a busy machine.
COLLECT_LIMIT_S = 600.0
PYTEST_REFUSED = (3, 4)  # pytest.ExitCode.INTERNAL_ERROR, USAGE_ERROR (a test without its markers)


class GradingError(RuntimeError):
    """The grader cannot go on (no submission, not a course, a course whose tests are broken)."""


def labs_with_tests(root: Path = ROOT) -> list[str]:
    return [lab.name for lab in lab_dirs(root) if any((lab / "tests").glob("**/test_*.py"))]


def task_titles(lab_dir: Path) -> dict[int, str]:
    """Task titles from the lab README's ``## Task K — Title (N points)`` headings."""
    readme = lab_dir / "README.md"
    if not readme.exists():
        return {}
    return {int(m.group(1)): m.group(2) or "" for m in TASK_HEADING.finditer(readme.read_text(encoding="utf-8"))}


def readme_points(lab_dir: Path) -> dict[int, float]:
    """Points per task as the lab README states them."""
    readme = lab_dir / "README.md"
    if not readme.exists():
        return {}
    return {int(m.group(1)): float(m.group(3)) for m in TASK_HEADING.finditer(readme.read_text(encoding="utf-8"))}


def readme_hidden_points(lab_dir: Path) -> float:
    """The hidden tests' points the README's table announces on its total rows (0 when none)."""
    readme = lab_dir / "README.md"
    if not readme.exists():
        return 0.0
    rows = [line for line in readme.read_text(encoding="utf-8").splitlines()
            if line.lstrip().startswith("|") and ("**total**" in line or "**part" in line)]
    return sum(float(m.group(1)) for row in rows for m in HIDDEN_ANNOUNCED.finditer(row))


def readme_mismatch(course: Path, lab: str, tests: list[TestResult]) -> str:
    """A note when the collected tests' points per task differ from the lab README's table.

    Without its hidden tests (the student edition leaves ``tests/hidden`` out), a lab's tests fall
    short of the README by exactly the hidden points its table announces: that difference is the
    README telling the truth, not a mismatch, so it gives no note. Any other difference does.
    """
    stated = readme_points(course / lab)
    collected: dict[int, float] = {}
    for test in tests:
        if test.graded and test.task is not None:
            collected[test.task] = collected.get(test.task, 0.0) + test.points
    differences = {task: stated.get(task, 0.0) - collected.get(task, 0.0) for task in sorted({*stated, *collected})}
    differences = {task: short for task, short in differences.items() if abs(short) > 1e-6}
    announced = readme_hidden_points(course / lab)
    if (differences and announced and not any(test.hidden for test in tests)
            and all(short > 0 for short in differences.values())
            and abs(sum(differences.values()) - announced) < 1e-6):
        return ""  # exactly the announced hidden tests are missing
    wrong = [f"task {task}: tests {collected.get(task, 0.0):g}, README {stated.get(task, 0.0):g}"
             for task in differences]
    return f"{lab}: the tests' points differ from the README's ({'; '.join(wrong)})" if stated and wrong else ""


#: Grading always uses the fixture models: a model chosen by the environment would move grades
#: (the reference gets 3 / 12 on lab01 task 5 with GPT-2) without any report saying so.
GRADE_MOVING_ENV = ("COURSE_MODEL", "COURSE_DRAFT_MODEL")


def child_env(course: Path, impl: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child pytest working in ``course``: this course first on the path,
    and none of :data:`GRADE_MOVING_ENV`."""
    env = {key: value for key, value in (os.environ if base is None else base).items()
           if key not in GRADE_MOVING_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(course), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COURSE_IMPL"] = impl
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _course_key(course: Path, lab: str) -> str:
    """A digest of every file a collection of ``lab`` reads (lab code excepted: none is imported)."""
    digest = hashlib.sha256()
    files = [course / "conftest.py", course / "pyproject.toml", course / lab / "README.md",
             *sorted((course / "shared").rglob("*.py")), *sorted((course / lab / "tests").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(course)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


#: Collections already made in this process, by course content: grading many submissions in one
#: process collects each lab once.
_COLLECTED: dict[tuple, tuple[list[dict], str]] = {}


def expected_tests(course: Path, lab: str, impl: str, tasks: list[int] | None = None,
                   extra_args: list[str] | None = None) -> tuple[list[TestResult], str]:
    """The tests of ``lab`` as the course defines them, and a problem ("" when none).

    Run in a course whose ``src/`` is the course's own (never a submission's): nothing the
    collection imports comes from a student.
    """
    key = (_course_key(course, lab), lab, impl, tuple(tasks or ()), tuple(extra_args or ()))
    if key not in _COLLECTED:
        tests, problem = _collect(course, lab, impl, tasks, extra_args)
        _COLLECTED[key] = ([dataclasses.asdict(t) for t in tests], problem)
    tests, problem = _COLLECTED[key]
    return [TestResult(**fields) for fields in tests], problem


def _collect(course: Path, lab: str, impl: str, tasks: list[int] | None,
             extra_args: list[str] | None) -> tuple[list[TestResult], str]:
    with tempfile.TemporaryDirectory(prefix="course-collect-") as scratch:
        records_file = Path(scratch) / "collected.jsonl"
        command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                   f"--impl={impl}", f"--course-results={records_file}", "--continue-on-collection-errors",
                   *[f"--task={t}" for t in tasks or []], *(extra_args or []), f"{lab}/tests"]
        try:
            child = subprocess.run(command, cwd=course, env=child_env(course, impl), capture_output=True,
                                   text=True, timeout=COLLECT_LIMIT_S, stdin=subprocess.DEVNULL)
            output = (child.stdout + child.stderr)[-3000:]
        except subprocess.TimeoutExpired:
            return [], f"{lab}: collecting its tests took over {COLLECT_LIMIT_S:.0f} s"
        records = [json.loads(line) for line in records_file.read_text(encoding="utf-8").splitlines()
                   if line.strip()] if records_file.exists() else []
    tests = [TestResult(nodeid=r["nodeid"], lab=lab, task=r.get("task"), points=float(r.get("points", 0.0)),
                        hidden=bool(r.get("hidden")), scaffold=bool(r.get("scaffold")), doc=r.get("doc", ""),
                        not_gradable=r.get("not_gradable", ""), timeout=float(r.get("timeout") or 0.0))
             for r in records if r.get("event") == "collected"]
    problems = [f"{lab}: {r['nodeid']} could not be collected, so its tests are not graded: {r.get('message', '')}"
                for r in records if r.get("event") == "collect_error"]
    done = [r for r in records if r.get("event") == "collection_done"]
    if done and done[0].get("lab_code_imported"):
        problems.append(f"{lab}: collecting its tests imported lab code ({', '.join(done[0]['lab_code_imported'])}); "
                        "tests must import it lazily through shared.impl.lab_module")
        tests = []
    if not done or child.returncode in PYTEST_REFUSED:
        problems.append(f"{lab}: pytest could not collect the tests (exit code {child.returncode}).\n{output}")
        tests = []
    elif not tests and not problems:
        problems.append(f"{lab}: no tests were collected" + (f" for task {tasks}" if tasks else ""))
    return tests, "\n".join(problems)
