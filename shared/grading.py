"""Grading: run each lab's tests in a child pytest, read its results lines, score them.

The child runs with ``--course-results FILE``: the course plugin writes one JSON line per
collected test, then one per result, as they happen. So when student code crashes the
interpreter, hangs past the time limit or fails to import, the grader still knows every test
that exists, which finished and how, and which one the run died in. It then starts a new child
for the tests that never ran, so one crash costs one test, not the lab.

A submission is graded in a *pristine* copy of the course: only the submission's ``lab*/src/``
folders are copied in, so an edited test, conftest or ``shared`` module in it changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .paths import ROOT, lab_dirs, lab_number

IGNORED = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.pyc", ".pytest_cache",
                                 ".ruff_cache", ".hypothesis", "*.egg-info", "build", "dist")
TASK_HEADING = re.compile(r"^#{2,3}\s+Task\s+(\d+)\s*[:.\u2014\-]+\s*(.+?)\s*\((\d+(?:\.\d+)?)\s+points?\)",
                          re.M)


PYTEST_REFUSED = (3, 4)  # pytest.ExitCode.INTERNAL_ERROR, USAGE_ERROR


class GradingError(RuntimeError):
    """The grader itself cannot go on (bad arguments, a broken course copy)."""


@dataclass
class TestResult:
    nodeid: str
    lab: str
    task: int | None
    points: float
    hidden: bool = False
    scaffold: bool = False
    doc: str = ""
    outcome: str = "not run"  # passed | failed | error | skipped | not run
    message: str = ""
    duration: float = 0.0

    @property
    def graded(self) -> bool:
        return not self.scaffold

    @property
    def gradable(self) -> bool:
        """False for a test skipped because this machine lacks a GPU or a framework."""
        return self.outcome != "skipped"

    @property
    def earned(self) -> float:
        return self.points if self.outcome == "passed" else 0.0


@dataclass
class LabResult:
    lab: str
    tests: list[TestResult] = field(default_factory=list)
    task_titles: dict[int, str] = field(default_factory=dict)
    problem: str = ""  # set when the lab's tests could not even be collected

    def graded(self) -> list[TestResult]:
        return [t for t in self.tests if t.graded]

    @property
    def score(self) -> float:
        return sum(t.earned for t in self.graded())

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.graded() if t.gradable)

    @property
    def not_gradable_points(self) -> float:
        return sum(t.points for t in self.graded() if not t.gradable)


@dataclass
class GradeReport:
    impl: str
    labs: list[LabResult]
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(lab.score for lab in self.labs)

    @property
    def max_score(self) -> float:
        return sum(lab.max_score for lab in self.labs)

    def to_json(self) -> dict:
        return {
            "score": self.score, "max_score": self.max_score, "impl": self.impl,
            "not_gradable_points": sum(lab.not_gradable_points for lab in self.labs),
            "seconds": round(self.seconds, 1),
            "labs": [{
                "lab": lab.lab, "score": lab.score, "max_score": lab.max_score,
                "not_gradable_points": lab.not_gradable_points, "problem": lab.problem,
                "tasks": [{
                    "task": task, "title": lab.task_titles.get(task, ""),
                    "score": sum(t.earned for t in tests),
                    "max_score": sum(t.points for t in tests if t.gradable),
                    "tests": [asdict(t) for t in tests],
                } for task, tests in _by_task(lab.graded()).items()],
                "scaffold_tests": [asdict(t) for t in lab.tests if t.scaffold],
            } for lab in self.labs],
        }

    def to_gradescope(self) -> dict:
        """Gradescope's autograder ``results.json``."""
        tests = []
        for lab in self.labs:
            for task, task_tests in _by_task(lab.graded()).items():
                for index, test in enumerate(task_tests, start=1):
                    name = test.nodeid.split("::")[-1]
                    title = lab.task_titles.get(task, "")
                    output = test.message
                    if not test.gradable:
                        output = f"not gradable on this machine: {test.message}"
                    elif test.outcome == "passed":
                        output = test.doc
                    tests.append({
                        "name": f"{lab.lab} task {task}{f' ({title})' if title else ''}: {name}",
                        "number": f"{lab_number(lab.lab)}.{task}.{index}",
                        "score": test.earned,
                        "max_score": test.points if test.gradable else 0.0,
                        "status": "passed" if test.outcome == "passed" else "failed",
                        "output": output[:8000],
                        "visibility": "after_published" if test.hidden else "visible",
                    })
            if lab.problem:
                tests.append({"name": f"{lab.lab}: could not run", "score": 0.0, "max_score": 0.0,
                              "status": "failed", "output": lab.problem, "visibility": "visible"})
        return {"score": self.score, "tests": tests, "visibility": "visible",
                "output": f"{self.score:g} / {self.max_score:g} points ({self.impl} code)"}


def _by_task(tests: list[TestResult]) -> dict[int, list[TestResult]]:
    grouped: dict[int, list[TestResult]] = {}
    for test in sorted(tests, key=lambda t: (t.task or 0)):
        grouped.setdefault(test.task or 0, []).append(test)
    return grouped


def task_titles(lab_dir: Path) -> dict[int, str]:
    """Task titles from the lab README's ``## Task K — Title (N points)`` headings."""
    readme = lab_dir / "README.md"
    if not readme.exists():
        return {}
    return {int(m.group(1)): m.group(2) for m in TASK_HEADING.finditer(readme.read_text(encoding="utf-8"))}


def readme_points(lab_dir: Path) -> dict[int, float]:
    """Points per task as the lab README states them."""
    readme = lab_dir / "README.md"
    if not readme.exists():
        return {}
    return {int(m.group(1)): float(m.group(3))
            for m in TASK_HEADING.finditer(readme.read_text(encoding="utf-8"))}


# --------------------------------------------------------------------------------------------
# Running one lab


def _read_results(path: Path) -> tuple[dict[str, dict], dict[str, dict], dict[str, dict]]:
    """(collected, results, collection errors), each by node id, from one results file."""
    collected, results, broken = {}, {}, {}
    targets = {"collected": collected, "result": results, "collect_error": broken}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
            if record.get("event") in targets:
                targets[record["event"]][record["nodeid"]] = record
    return collected, results, broken


def _child_env(course_root: Path, impl: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(course_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COURSE_IMPL"] = impl
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_lab(course_root: Path, lab: str, impl: str, *, timeout: float = 900.0,
            tasks: list[int] | None = None, extra_args: list[str] | None = None,
            on_progress: Callable[[str], None] | None = None) -> LabResult:
    """Run one lab's tests in child pytest processes and gather every test's result."""
    result = LabResult(lab=lab, task_titles=task_titles(course_root / lab))
    workdir = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        base = [sys.executable, "-m", "pytest", f"--impl={impl}", "-p", "no:cacheprovider",
                "-q", "--no-header", "-o", "console_output_style=classic", "--continue-on-collection-errors",
                *[f"--task={t}" for t in tasks or []], *(extra_args or [])]
        collected: dict[str, dict] = {}
        results: dict[str, dict] = {}
        targets = [f"{lab}/tests"]
        for attempt in range(50):  # each round loses at most the test that crashed it
            results_file = workdir / f"results-{attempt}.jsonl"
            started, code = time.monotonic(), None
            try:
                child = subprocess.run(
                    [*base, f"--course-results={results_file}", *targets],
                    cwd=course_root, env=_child_env(course_root, impl), capture_output=True,
                    text=True, timeout=timeout, stdin=subprocess.DEVNULL)
                code = child.returncode
                ended = f"pytest exited with code {code}"
                output = (child.stdout + child.stderr)[-3000:]
            except subprocess.TimeoutExpired as expired:
                ended = f"the run was stopped after {time.monotonic() - started:.0f} s (time limit)"
                output = ((expired.stdout or b"").decode(errors="replace")
                          + (expired.stderr or b"").decode(errors="replace"))[-3000:]
            new_collected, new_results, broken = _read_results(results_file)
            if attempt == 0:
                collected = new_collected
                if broken:  # a test file that cannot even be imported: its tests are not graded
                    result.problem = "\n".join(
                        f"{lab}: {nodeid} could not be collected, so its tests are not graded: "
                        f"{record.get('message', '')}" for nodeid, record in broken.items())
                if not collected:
                    result.problem = (f"{lab}: no tests could be collected ({ended}).\n"
                                      f"{result.problem or output}")
                    return result
                if not new_results and code in PYTEST_REFUSED:
                    # pytest refused the run after collecting (a test without its markers, say):
                    # no test ran, and none is to blame.
                    result.problem = f"{lab}: pytest could not run the tests ({ended}).\n{output}"
                    break
            results.update(new_results)
            unfinished = [n for n in collected if n not in results]
            if not unfinished:
                break
            started_ids = [n for n in new_collected if n not in new_results]
            culprit = started_ids[0] if started_ids else unfinished[0]
            results[culprit] = {
                "outcome": "error", "duration": 0.0,
                "message": f"the test run died in this test: {ended}. "
                           f"Look for an infinite loop, a crash or os._exit in your code.\n{output}",
            }
            if on_progress:
                on_progress(f"{lab}: {culprit} crashed or hung; running the remaining tests again")
            targets = [n for n in unfinished if n != culprit]
            if not targets:
                break
        for nodeid, info in collected.items():
            outcome = results.get(nodeid, {})
            result.tests.append(TestResult(
                nodeid=nodeid, lab=lab, task=info.get("task"), points=info.get("points", 0.0),
                hidden=info.get("hidden", False), scaffold=info.get("scaffold", False),
                doc=info.get("doc", ""), outcome=outcome.get("outcome", "not run"),
                message=outcome.get("message", ""), duration=outcome.get("duration", 0.0)))
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Submissions


def labs_with_tests(root: Path = ROOT) -> list[str]:
    return [lab.name for lab in lab_dirs(root) if any((lab / "tests").glob("**/test_*.py"))]


def prepare_submission(submission: Path, root: Path = ROOT) -> Path:
    """A pristine temporary copy of the course with the submission's ``lab*/src`` copied in.

    Raises:
        GradingError: when ``submission`` is missing or holds no ``labNN_*/src`` folder.
    """
    submission = Path(submission).expanduser()
    if not submission.is_dir():
        raise GradingError(f"--submission {submission}: no such folder")
    found = [lab.name for lab in lab_dirs(root) if (submission / lab.name / "src").is_dir()]
    if not found:
        expected = ", ".join(f"{lab.name}/src/" for lab in lab_dirs(root))
        raise GradingError(f"--submission {submission}: no lab folders in it "
                           f"(expected one or more of {expected})")
    copy = Path(tempfile.mkdtemp(prefix="course-submission-"))
    shutil.copytree(root, copy, ignore=IGNORED, dirs_exist_ok=True)
    for name in found:
        target = copy / name / "src"
        shutil.rmtree(target)
        shutil.copytree(submission / name / "src", target, ignore=IGNORED)
        for planted in target.rglob("conftest.py"):  # only the course's own conftest counts
            planted.unlink()
    return copy


def grade(*, impl: str = "student", submission: Path | None = None, labs: list[str] | None = None,
          timeout: float = 900.0, on_progress: Callable[[str], None] | None = None,
          root: Path = ROOT) -> GradeReport:
    """Grade the labs that have tests; see the module docstring. ``root`` is the course to grade
    with (this one by default)."""
    started = time.monotonic()
    course_root = prepare_submission(submission, root) if submission else root
    try:
        chosen = labs or labs_with_tests(course_root)
        lab_results = []
        for lab in chosen:
            if on_progress:
                on_progress(f"grading {lab}")
            lab_results.append(run_lab(course_root, lab, impl, timeout=timeout, on_progress=on_progress))
        return GradeReport(impl=impl, labs=lab_results, seconds=time.monotonic() - started)
    finally:
        if submission:
            shutil.rmtree(course_root, ignore_errors=True)


NEEDS_EARLIER = re.compile(r"^NotImplementedError: needs lab(\d\d) task (\d+) first: ")


def skeleton_problems(report: GradeReport) -> list[str]:
    """For the inverted check: every graded test on the skeleton must fail with the
    NotImplementedError of its own task, or of an earlier task it builds on (then the plugin's
    message says "needs labNN task K first"). Returns one line per test that does not."""
    problems = []
    if report.score:
        problems.append(f"the skeleton earned {report.score:g} points (expected 0)")
    for lab in report.labs:
        if lab.problem:
            problems.append(lab.problem.splitlines()[0])
        for test in lab.graded():
            if not test.gradable:
                continue
            own = f"lab{lab_number(lab.lab):02d} task {test.task}:"
            first_line = test.message.splitlines()[0] if test.message else ""
            needs = NEEDS_EARLIER.match(first_line)
            earlier = needs is not None and test.task is not None and (
                (int(needs.group(1)), int(needs.group(2))) < (lab_number(lab.lab), test.task))
            if test.outcome not in {"failed", "error"} or not (
                    first_line.startswith(f"NotImplementedError: {own}") or earlier):
                problems.append(f"{test.nodeid}: {test.outcome} with {first_line[:160]!r}, "
                                f"expected NotImplementedError: {own} ...")
    return problems
