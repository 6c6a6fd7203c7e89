"""Grading: score a submission (or this course's own code) with the course's tests, in steps.

=================  =====================================================================
``prepare.py``     the grading copy: the student edition, the hidden tests, and only the
                   submission's ``labNN_*/src`` files (no solution to import, no symlink)
``collect.py``     what the course expects: tests, tasks, points, hidden, requirement skips,
                   from a collection run that imports no student code
``sandbox.py``     where and as whom the tests run: under bubblewrap (only the copy and the
                   interpreter visible, read-only; own PID and network namespaces), as a user
                   of its own when the grader is root, memory and process limits
``limits.py``      the cgroup that bounds the memory and processes of a child's whole tree
``run.py``         the child pytest processes: records through the parent's pipe, signed; a
                   hard per-test limit, only expected records counted, crash recovery, a time
                   budget, a reason for every "not run"
``integrity.py``   the static scan of ``src/`` and the run-time checks (copy, site-packages)
``report.py``      the terminal table and the JSON; ``gradescope.py``: Gradescope's file
``skeleton.py``    the CI check that the skeleton earns nothing, each test failing with its task
``results.py``     the results themselves
=================  =====================================================================

:func:`grade` below reads top to bottom in that order. With a submission, anything the graded
process did to the grader (forged or out-of-order records, replaced pytest internals, a changed
copy, course or site-packages) withholds the lab's score and is listed in the integrity report
(a change to the course or site-packages under bubblewrap, out of the graded code's reach, is a
warning instead).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..paths import ROOT
from . import collect, integrity, prepare, run
from . import gradescope as _gradescope  # noqa: F401  (the grader's own code, loaded
from . import report as _report  # noqa: F401  before any graded code runs)
from .collect import GradingError, labs_with_tests, readme_points, task_titles
from .prepare import prepare_submission
from .results import Finding, GradeReport, LabResult, TestResult, by_task
from .sandbox import open_sandbox
from .skeleton import skeleton_problems

__all__ = ["DEFAULT_BUDGET_S", "Finding", "GradeReport", "GradingError", "LabResult", "TestResult", "by_task",
           "grade", "labs_with_tests", "prepare_submission", "readme_points", "run_lab", "skeleton_problems",
           "task_titles"]

DEFAULT_BUDGET_S = 1800.0  # per lab: its whole test suite, every restart included


def grade(*, impl: str = "student", submission: Path | None = None, labs: list[str] | None = None,
          tasks: list[int] | None = None, timeout: float = DEFAULT_BUDGET_S,
          on_progress: Callable[[str], None] | None = None, root: Path = ROOT,
          extra_args: list[str] | None = None) -> GradeReport:
    """Grade ``labs`` (default: every lab with tests) of ``submission``, or of the course at
    ``root`` itself when there is none. ``timeout`` is each lab's time budget in seconds.

    A submission that cannot be graded at all (missing, empty, not a course) gives a report with
    ``problem`` set and score 0, never an exception: a results file can always be written.

    Raises:
        GradingError: for a mistake of the caller's (``--impl solution`` with a submission).
    """
    started = time.monotonic()
    root = Path(root).resolve()
    chosen = labs or labs_with_tests(root)
    if submission is None:
        lab_results = [run_lab(root, lab, impl, timeout=timeout, tasks=tasks, extra_args=extra_args,
                               on_progress=on_progress) for lab in chosen]
        return GradeReport(impl=impl, labs=lab_results, seconds=time.monotonic() - started)
    if impl != "student":
        raise GradingError("a submission is graded on its own code: --impl solution makes no sense with it")

    # 1. Where the submission's labs are (or why it cannot be graded).
    try:
        where, notes = prepare.locate(submission, chosen)
    except GradingError as error:
        return GradeReport(impl=impl, labs=[], problem=str(error), submission=str(submission),
                           seconds=time.monotonic() - started)
    site_before, course_before = integrity.site_files(), integrity.course_stamp(root, chosen)
    report = GradeReport(impl=impl, labs=[], notes=notes, submission=str(submission))
    with open_sandbox(root) as box:
        # 2. The grading copy, and what the course expects (no student code in it yet).
        report.warnings += box.warnings + ([box.limits_warning] if box.limits_warning else [])
        report.sandbox = box.describe()
        copy = prepare.build_copy(root, box.course)
        for lab in chosen:
            if on_progress:
                on_progress(f"collecting {lab}'s tests")
            tests, problem = collect.expected_tests(copy, lab, "student", tasks, extra_args)
            report.labs.append(LabResult(lab=lab, tests=tests, task_titles=task_titles(copy / lab), problem=problem))
            if tests and not tasks and collect.readme_mismatch(copy, lab, tests):
                report.labs[-1].notes.append(collect.readme_mismatch(copy, lab, tests))
        # 3. The submission's src/ files, and what the copy holds from now on.
        given = box.folder / "given"  # the course's skeletons: what they hold is no finding
        for lab in chosen:
            if (copy / lab / "src").is_dir():
                shutil.copytree(copy / lab / "src", given / lab)
        found, added = prepare.add_submission(copy, where, chosen, root)
        report.notes += added
        prepare.make_readable(copy, box.uid if box.kind == "user" else None)
        if box.kind != "none" and any(box.readable_by_child(root / lab / "solution") for lab in chosen
                                      if (root / lab / "solution").is_dir()):
            report.warnings.append(f"the graded code's user can read the course at {root}, solutions "
                                   f"included: make it unreadable to other users (chmod -R go-rwx {root})")
        copy_before = prepare.fingerprint(copy)
        for result in report.labs:  # every lab's scan before any child runs
            if result.lab in found:
                result.integrity += integrity.scan(copy / result.lab / "src", f"{result.lab}/src", given / result.lab)
        # 4. Each lab: run, check.
        for result in report.labs:
            if result.lab not in found:
                for test in result.tests:
                    test.message = f"not run: {result.lab}/src/ is not in the submission"
                continue
            if not result.tests:
                continue
            if on_progress:
                on_progress(f"grading {result.lab}")
            records, run_notes = run.run_tests(copy, result.lab, result.tests, box, impl="student",
                                               budget_s=timeout, extra_args=extra_args, on_progress=on_progress)
            result.notes += run_notes
            _withhold_on_tampering(result, records)
            changed = prepare.changed_files(copy, copy_before)
            if changed:
                _withhold(result, "the graded code changed the grading copy: " + ", ".join(changed[:10]))
                copy_before = prepare.fingerprint(copy)
    # 5. Outside the sandbox: the instructor's course and the interpreter's site folders.
    outside = [f"site-packages: {name}" for name in integrity.differences(site_before, integrity.site_files())]
    course_after = integrity.course_stamp(root, chosen)
    outside += [f"the course: {name}" for name in integrity.differences(course_before, course_after)]
    if outside and box.kind == "bubblewrap":  # out of the graded code's reach: someone else's edit
        report.warnings.append("changed while grading, by something other than the graded code (bubblewrap "
                               "kept it out of reach): " + ", ".join(outside[:10]))
    elif outside:
        for result in report.labs:
            _withhold(result, "something changed outside the sandbox while grading: " + ", ".join(outside[:10]))
    report.secrets = integrity.secret_lines(root)
    report.seconds = time.monotonic() - started
    return report


def run_lab(course: Path, lab: str, impl: str, *, timeout: float = DEFAULT_BUDGET_S, tasks: list[int] | None = None,
            extra_args: list[str] | None = None, on_progress: Callable[[str], None] | None = None) -> LabResult:
    """Grade one lab of the course at ``course`` in place (the course's own code: trusted, so the
    child runs as the grader's user; still in its own process group, with the same limits)."""
    tests, problem = collect.expected_tests(course, lab, impl, tasks, extra_args)
    result = LabResult(lab=lab, tests=tests, task_titles=task_titles(course / lab), problem=problem)
    if tests and not tasks and collect.readme_mismatch(course, lab, tests):
        result.notes.append(collect.readme_mismatch(course, lab, tests))
    if tests:
        with open_sandbox(course, other_user=False) as box:
            records, notes = run.run_tests(course, lab, tests, box, impl=impl, budget_s=timeout,
                                           extra_args=extra_args, on_progress=on_progress)
        result.notes += notes
        _withhold_on_tampering(result, records)
    return result


def _withhold_on_tampering(result: LabResult, records: run.Records) -> None:
    found = [f"the results records: {a}" for a in records.anomalies] + [
        f"the test process was patched {t}" for t in records.tampered]
    for what in found:
        result.integrity.append(Finding("runtime", result.lab, what))
    if found:
        result.withheld = "the graded code tampered with grading (see the integrity report)"


def _withhold(result: LabResult, why: str) -> None:
    result.integrity.append(Finding("runtime", result.lab, why))
    result.withheld = "the graded code tampered with grading (see the integrity report)"
