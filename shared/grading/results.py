"""What grading produces: one result per expected test, gathered per lab, then per submission.

The list of tests, their tasks, points, hidden flags and requirement skips come from the course
(``collect.py``), never from the graded process; the graded process only supplies outcomes
(``run.py``). So the denominator of a lab is fixed before any student code runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: Outcomes of one test. Only ``passed`` earns points; ``not gradable`` is a test that a course
#: requirement marker (gpu, vllm...) skipped at collection: it is out of this machine's total.
OUTCOMES = ("passed", "failed", "error", "not gradable", "not run")


def points(value: float) -> float:
    """Points as reported: rounded to 2 decimals, so sums carry no float noise (97.99999999999994)."""
    return round(value + 0.0, 2)


@dataclass
class TestResult:
    nodeid: str
    lab: str
    task: int | None
    points: float
    hidden: bool = False
    scaffold: bool = False
    doc: str = ""
    not_gradable: str = ""  # the requirement marker's reason, decided at collection
    timeout: float = 120.0  # the test's own time limit (pytest-timeout), from collection
    outcome: str = "not run"
    message: str = ""
    duration: float = 0.0

    __test__ = False  # not a pytest test class, whatever imports it

    @property
    def graded(self) -> bool:
        return not self.scaffold

    @property
    def gradable(self) -> bool:
        """False for a test that needs a GPU or a framework this machine lacks."""
        return not self.not_gradable

    @property
    def earned(self) -> float:
        return self.points if self.outcome == "passed" and self.gradable else 0.0


@dataclass
class Finding:
    """One line of the integrity report: a construct no honest solution needs (``static``, from
    ``integrity.scan``) or something the graded process did to the grader (``runtime``)."""

    kind: str  # "static" | "runtime"
    where: str  # file:line, or the test / file concerned
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class LabResult:
    lab: str
    tests: list[TestResult] = field(default_factory=list)
    task_titles: dict[int, str] = field(default_factory=dict)
    problem: str = ""  # the lab could not be graded as a whole (its tests broken, no src/...)
    notes: list[str] = field(default_factory=list)  # what the grader did with the submission
    integrity: list[Finding] = field(default_factory=list)
    withheld: str = ""  # set when the graded process tampered with grading: score held at 0

    def graded(self) -> list[TestResult]:
        return [t for t in self.tests if t.graded]

    @property
    def earned(self) -> float:
        """The points the tests earned, before any withholding."""
        return points(math.fsum(t.earned for t in self.graded()))

    @property
    def score(self) -> float:
        return 0.0 if self.withheld else self.earned

    @property
    def max_score(self) -> float:
        return points(math.fsum(t.points for t in self.graded() if t.gradable))

    @property
    def not_gradable_points(self) -> float:
        return points(math.fsum(t.points for t in self.graded() if not t.gradable))


@dataclass
class GradeReport:
    impl: str
    labs: list[LabResult]
    seconds: float = 0.0
    problem: str = ""  # nothing could be graded at all (no submission, not a course...)
    submission: str = ""  # the folder graded; "" for the course's own code
    notes: list[str] = field(default_factory=list)  # what the grader did with the submission
    warnings: list[str] = field(default_factory=list)  # for the instructor only (the sandbox's setup)
    sandbox: str = ""  # what the graded code ran in, and the limits that held (for the instructor)
    secrets: list[str] = field(default_factory=list, repr=False)  # lines no visible output may show

    @property
    def score(self) -> float:
        return points(math.fsum(lab.score for lab in self.labs))

    @property
    def max_score(self) -> float:
        return points(math.fsum(lab.max_score for lab in self.labs))

    @property
    def not_gradable_points(self) -> float:
        return points(math.fsum(lab.not_gradable_points for lab in self.labs))

    def integrity(self) -> list[Finding]:
        return [finding for lab in self.labs for finding in lab.integrity]

    def to_json(self) -> dict:
        from .report import to_json

        return to_json(self)

    def to_gradescope(self) -> dict:
        from .gradescope import to_gradescope

        return to_gradescope(self)


def by_task(tests: list[TestResult]) -> dict[int, list[TestResult]]:
    """Tests grouped by task number, in task order (collection order within a task)."""
    grouped: dict[int, list[TestResult]] = {}
    for test in sorted(tests, key=lambda t: t.task or 0):
        grouped.setdefault(test.task or 0, []).append(test)
    return grouped
