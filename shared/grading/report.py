"""Report: the terminal table and the JSON file (Gradescope's file is ``gradescope.py``).

Both are for the instructor: they show everything, hidden tests' messages, the integrity report
and the sandbox warnings included.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import asdict
from typing import Any

from rich.markup import escape
from rich.table import Table

from .results import GradeReport, LabResult, by_task, points


def _task_rows(lab: LabResult) -> list[dict[str, Any]]:
    return [{
        "task": task, "title": lab.task_titles.get(task, ""),
        "score": points(math.fsum(t.earned for t in tests)),
        "max_score": points(math.fsum(t.points for t in tests if t.gradable)),
        "tests": [asdict(t) for t in tests],
    } for task, tests in by_task(lab.graded()).items()]


def to_json(report: GradeReport) -> dict[str, Any]:
    """Everything: scores, each lab, task and test, notes, warnings and the integrity report."""
    return {
        "score": report.score, "max_score": report.max_score, "impl": report.impl,
        "not_gradable_points": report.not_gradable_points, "seconds": round(report.seconds, 1),
        "submission": report.submission, "problem": report.problem, "notes": report.notes, "warnings": report.warnings,
        "sandbox": report.sandbox,
        "integrity": [asdict(f) | {"lab": lab.lab} for lab in report.labs for f in lab.integrity],
        "labs": [{
            "lab": lab.lab, "score": lab.score, "earned": lab.earned, "max_score": lab.max_score,
            "not_gradable_points": lab.not_gradable_points, "withheld": lab.withheld,
            "problem": lab.problem, "notes": lab.notes, "integrity": [asdict(f) for f in lab.integrity],
            "tasks": _task_rows(lab),
            "scaffold_tests": [asdict(t) for t in lab.tests if t.scaffold],
        } for lab in report.labs],
    }


def print_report(report: GradeReport, console: Any) -> None:
    """The score table per lab and task, the first failures, notes and the integrity report.

    Every text that comes from a test, a submission or a file is escaped: a ``[/]`` in a failure
    message is printed as it is, never read as markup (which would crash the grader)."""
    if report.problem:
        console.print(f"[red]not graded: {escape(report.problem)}[/red]", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    for lab in report.labs:
        table = Table(title=escape(f"{lab.lab} ({report.impl} code)"))
        for column in ("task", "points", "passed", "failed", "not gradable here"):
            table.add_column(column, justify="left" if column == "task" else "right")
        for task, tests in by_task(lab.graded()).items():
            title = lab.task_titles.get(task, "")
            earned = points(math.fsum(t.earned for t in tests))
            possible = points(math.fsum(t.points for t in tests if t.gradable))
            table.add_row(escape(f"{task}. {title}" if title else str(task)), f"{earned:g} / {possible:g}",
                          str(sum(t.outcome == "passed" for t in tests)),
                          str(sum(t.outcome in {"failed", "error", "not run"} for t in tests)),
                          str(sum(not t.gradable for t in tests)))
        total = f"{lab.score:g} / {lab.max_score:g}" + (f" (withheld; earned {lab.earned:g})" if lab.withheld else "")
        table.add_row("[bold]lab total[/bold]", f"[bold]{total}[/bold]", "", "",
                      f"{lab.not_gradable_points:g} pts" if lab.not_gradable_points else "")
        console.print(table)
        if lab.problem:
            console.print(f"[red]{escape(lab.problem)}[/red]", highlight=False)
        failures = [t for t in lab.graded() if t.outcome in {"failed", "error", "not run"}]
        for test in failures[:3]:
            first = test.message.splitlines()[0] if test.message else test.outcome
            console.print(f"  [red]✗[/red] {escape(test.nodeid.split('::')[-1])}: {escape(first[:150])}",
                          highlight=False)
        if len(failures) > 3:
            console.print(f"  … and {len(failures) - 3} more failing tests "
                          f"(run `course test {lab.lab[:5]}` to see them all)")
        for note in lab.notes:
            console.print(f"  [dim]{escape(note.splitlines()[0])}[/dim]", highlight=False)
        if lab.withheld:
            console.print(f"[red bold]{escape(f'{lab.lab}: score withheld: {lab.withheld}')}[/red bold]",
                          highlight=False)
    findings = report.integrity()
    if report.labs and report.submission:
        count = f"{len(findings)} finding(s)" if findings else "nothing found"
        console.print(f"[bold]Integrity report[/bold]: {count}")
        for finding in findings:
            colour = "red" if finding.kind == "runtime" else "yellow"
            console.print(f"  [{colour}]{finding.kind}[/] {escape(str(finding))}", highlight=False)
    if report.sandbox:
        console.print(f"[dim]sandbox: {escape(report.sandbox)}[/dim]", highlight=False)
    for warning in report.warnings:
        console.print(f"[red]warning:[/red] {escape(warning)}", highlight=False)
    console.print(f"[bold]Total: {report.score:g} / {report.max_score:g} points[/bold]"
                  + (f" ({report.not_gradable_points:g} more not gradable here)" if report.not_gradable_points
                     else "") + f" [dim]({report.seconds:.0f} s)[/dim]")


def open_results_file(path: str | os.PathLike[str]) -> int:
    """Open the ``--json`` / ``--gradescope`` file before any graded code runs, and keep it open:
    the file is then written through this descriptor whatever the graded code did to the path
    meanwhile (a symbolic link planted there is never followed). Refused: a symbolic link, or
    anything but a regular file of the grader's.

    Raises:
        OSError: when the path cannot be opened that way (``ELOOP`` for a symbolic link).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid():
        os.close(fd)
        raise OSError(f"{path}: not a regular file of this user's")
    return fd


def write_results_file(fd: int, text: str) -> None:
    """Replace the content of the file open at ``fd`` (from :func:`open_results_file`) with ``text``."""
    data = text.encode("utf-8")
    os.ftruncate(fd, 0)
    written = 0
    while written < len(data):
        written += os.pwrite(fd, data[written:], written)
