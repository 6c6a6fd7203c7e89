"""The CI check on the skeleton: it earns nothing, and every graded test fails with the
NotImplementedError of its own task, or of an earlier task it builds on (then the plugin's message
says "needs labNN task K first"). A test that passes on the skeleton asserts nothing."""

from __future__ import annotations

import re

from ..paths import lab_number
from .results import GradeReport

NEEDS_EARLIER = re.compile(r"^NotImplementedError: needs lab(\d\d) task (\d+) first: ")


def skeleton_problems(report: GradeReport) -> list[str]:
    """One line per graded test that does not fail the way the skeleton should make it fail."""
    problems = []
    if report.score:
        problems.append(f"the skeleton earned {report.score:g} points (expected 0)")
    if report.problem:
        problems.append(report.problem)
    for lab in report.labs:
        if lab.problem:
            problems.append(lab.problem.splitlines()[0])
        problems += [f"{lab.lab}: {finding}" for finding in lab.integrity if finding.kind == "runtime"]
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
