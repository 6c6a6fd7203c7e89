"""Gradescope: the autograder's ``results.json``, checked against Gradescope's documented format
(https://gradescope-autograders.readthedocs.io/en/latest/specs/).

What students see:
- one entry per graded test, named "labNN_x task K (Title): test_name", numbered lab.task.index,
  scored with its points (rounded); a hidden test's entry is ``after_published``, so neither it
  nor its output shows before the instructor publishes the grades;
- a test *not gradable on this machine* (it needs a GPU or a framework the autograder lacks) is an
  informational entry without a score, saying so; the top-level output says how many points
  that is, and the instructor sets the assignment's points to the gradable total (README);
- any visible output that quotes a line of a hidden test or of a solution has it redacted;
- a score withheld for tampering is 0, with the reason; the details go to the instructor only
  (stdout, hidden: ``stdout_visibility``, and ``extra_data``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..paths import lab_number
from .results import GradeReport, TestResult, by_task, points

VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "simple_format", "html", "md", "ansi"}
TOP_KEYS = {"score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
            "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
TEST_KEYS = {"score", "max_score", "status", "name", "name_format", "number", "output", "output_format", "tags",
             "visibility", "extra_data"}
MAX_OUTPUT = 8000
REDACTED = "[redacted: hidden test or solution text]"


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _test_entry(report: GradeReport, lab_withheld: bool, name: str, number: str, test: TestResult) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name, "name_format": "text", "number": number, "output_format": "text",
        "tags": [test.lab, f"task {test.task}"], "visibility": "after_published" if test.hidden else "visible",
        "extra_data": {"nodeid": test.nodeid, "outcome": test.outcome, "seconds": round(test.duration, 2)},
    }
    if not test.gradable:
        entry["name"] = f"{name} (not gradable on this machine)"
        entry["output"] = (f"Not gradable on this machine: {test.not_gradable}. Its {test.points:g} points are "
                           "not part of this total; your instructor grades them separately.")
        return entry
    passed = test.outcome == "passed" and not lab_withheld
    output = test.doc if test.outcome == "passed" else test.message
    if lab_withheld:
        output = "Withheld for review by the instructor.\n" + output
    if not test.hidden:  # a visible output must not carry what students may not see
        output = _redact(output, report.secrets)
    entry.update(score=points(test.earned if not lab_withheld else 0.0), max_score=points(test.points),
                 status="passed" if passed else "failed", output=output[:MAX_OUTPUT])
    return entry


def _summary(report: GradeReport) -> str:
    if report.problem:
        return f"This submission could not be graded: {report.problem}"
    lines = [f"{report.score:g} / {report.max_score:g} points."]
    if report.not_gradable_points:
        lines.append(f"{report.not_gradable_points:g} more points are not gradable on this machine (tests that "
                     "need a GPU or a framework it lacks, listed below); your instructor grades them separately.")
    for lab in report.labs:
        if lab.withheld:
            lines.append(f"{lab.lab}: the score is withheld for review by the instructor ({lab.withheld}).")
    lines += [f"Note: {note}" for note in report.notes]
    return _redact("\n".join(lines), report.secrets)


def to_gradescope(report: GradeReport) -> dict[str, Any]:
    """Gradescope's ``results.json`` for ``report`` (see the module docstring)."""
    tests = []
    for lab in report.labs:
        for task, task_tests in by_task(lab.graded()).items():
            title = lab.task_titles.get(task, "")
            for index, test in enumerate(task_tests, start=1):
                name = f"{lab.lab} task {task}{f' ({title})' if title else ''}: {test.nodeid.split('::')[-1]}"
                tests.append(_test_entry(report, bool(lab.withheld), name,
                                         f"{lab_number(lab.lab)}.{task}.{index}", test))
        if lab.problem:
            tests.append({"name": f"{lab.lab}: could not run", "name_format": "text", "status": "failed",
                          "output": _redact(lab.problem, report.secrets)[:MAX_OUTPUT], "output_format": "text",
                          "visibility": "visible"})
    return {
        "score": report.score, "execution_time": round(report.seconds), "output": _summary(report),
        "output_format": "text", "stdout_visibility": "hidden", "tests": tests,
        "extra_data": {"max_score": report.max_score, "not_gradable_points": report.not_gradable_points,
                       "withheld": {lab.lab: lab.withheld for lab in report.labs if lab.withheld},
                       "integrity": [f"{f.kind}: {f}" for f in report.integrity()]},
    }


def validate(results: dict[str, Any]) -> list[str]:
    """Every way ``results`` departs from Gradescope's documented format ([] when it conforms)."""
    problems = []
    try:
        json.dumps(results, allow_nan=False)
    except (TypeError, ValueError) as error:
        problems.append(f"not plain JSON: {error}")

    def number(where: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(f"{where} must be a number, got {value!r}")

    def choice(where: str, value: Any, allowed: set[str]) -> None:
        if value not in allowed:
            problems.append(f"{where} must be one of {sorted(allowed)}, got {value!r}")

    problems += [f"unknown top-level key {key!r}" for key in sorted(set(results) - TOP_KEYS)]
    for key in ("score", "execution_time"):
        if key in results:
            number(key, results[key])
    for key in ("visibility", "stdout_visibility"):
        if key in results:
            choice(key, results[key], VISIBILITIES)
    for key in ("output_format", "test_output_format", "test_name_format"):
        if key in results:
            choice(key, results[key], FORMATS)
    if "output" in results and not isinstance(results["output"], str):
        problems.append("output must be a string")
    if "extra_data" in results and not isinstance(results["extra_data"], dict):
        problems.append("extra_data must be an object")
    tests = results.get("tests", [])
    if "score" not in results and "tests" not in results:
        problems.append("either a top-level score or tests are required")
    if not isinstance(tests, list):
        return [*problems, "tests must be a list"]
    for index, test in enumerate(tests):
        where = f"tests[{index}]"
        if not isinstance(test, dict):
            problems.append(f"{where} must be an object")
            continue
        problems += [f"{where}: unknown key {key!r}" for key in sorted(set(test) - TEST_KEYS)]
        for key in ("score", "max_score"):
            if key in test:
                number(f"{where}.{key}", test[key])
        if "score" not in results and "score" not in test:
            problems.append(f"{where}: a score is required when there is no top-level score")
        if isinstance(test.get("score"), int | float) and isinstance(test.get("max_score"), int | float) \
                and test["score"] > test["max_score"] + 1e-9:
            problems.append(f"{where}: score {test['score']} is above max_score {test['max_score']}")
        if "status" in test:
            choice(f"{where}.status", test["status"], {"passed", "failed"})
        if "visibility" in test:
            choice(f"{where}.visibility", test["visibility"], VISIBILITIES)
        for key in ("output_format", "name_format"):
            if key in test:
                choice(f"{where}.{key}", test[key], FORMATS)
        for key in ("name", "number", "output"):
            if key in test and not isinstance(test[key], str):
                problems.append(f"{where}.{key} must be a string")
        if "tags" in test and not (isinstance(test["tags"], list) and all(isinstance(t, str) for t in test["tags"])):
            problems.append(f"{where}.tags must be a list of strings")
        if "extra_data" in test and not isinstance(test["extra_data"], dict):
            problems.append(f"{where}.extra_data must be an object")
    return problems


def failure_results(reason: str, seconds: float = 0.0) -> dict[str, Any]:
    """``results.json`` for a submission that could not be graded at all: score 0 and why."""
    return to_gradescope(GradeReport(impl="student", labs=[], problem=reason, seconds=seconds))
