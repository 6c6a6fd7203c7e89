"""The grader, end to end: child pytest runs on a synthetic course, crashes and hangs included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shared.grading import (
    GradeReport,
    GradingError,
    LabResult,
    grade,
    labs_with_tests,
    prepare_submission,
    readme_points,
    run_lab,
    skeleton_problems,
    task_titles,
)
from shared.grading import TestResult as Result  # (a Test* name would look like a test class)

from .helpers import DEMO_LAB, DEMO_SOLUTION, copy_course_base, make_submission, write_files

pytestmark = pytest.mark.usefixtures("fast_children")

ADD = "lab01_demo/tests/test_calc.py::test_add"
ADD_NEGATIVE = "lab01_demo/tests/test_calc.py::test_add_negative"
SCALE = "lab01_demo/tests/test_calc.py::test_scale"
SUM_THEN_SCALE = "lab01_demo/tests/test_calc.py::test_sum_then_scale"
THIS_COURSE = "lab01_demo/tests/test_calc.py::test_runs_in_this_course"
HIDDEN = "lab01_demo/tests/hidden/test_hidden_calc.py::test_add_large"
GRADED = {ADD: 2, ADD_NEGATIVE: 1, SCALE: 2, SUM_THEN_SCALE: 1, HIDDEN: 1}

# A student's calc.py where scale() misbehaves for factor == 4 (only test_scale uses 4).
SCALE_MISBEHAVES = DEMO_SOLUTION.replace(
    "    product = x * factor\n",
    "    if factor == 4:\n        MISBEHAVE\n    product = x * factor\n")


def _misbehaving(folder: Path, how: str) -> Path:
    source = SCALE_MISBEHAVES.replace("MISBEHAVE", how)
    return make_submission(folder, source)


def _outcomes(lab: LabResult) -> dict[str, str]:
    return {t.nodeid: t.outcome for t in lab.tests}


def _by_id(lab: LabResult) -> dict[str, Result]:
    return {t.nodeid: t for t in lab.tests}


def _graded_lab(root: Path, impl: str, **kwargs) -> LabResult:
    lab = run_lab(root, DEMO_LAB, impl, **kwargs)
    assert lab.problem == ""
    # Every test of the lab is accounted for, even when the run crashed or hung.
    assert set(_outcomes(lab)) == {*GRADED, THIS_COURSE}
    assert "not run" not in _outcomes(lab).values()
    return lab


def test_the_demo_course_reads_its_readme(demo_course: Path) -> None:
    assert labs_with_tests(demo_course) == [DEMO_LAB]
    assert task_titles(demo_course / DEMO_LAB) == {1: "Adding", 2: "Scaling"}
    points = {1: 0.0, 2: 0.0}
    for nodeid, value in GRADED.items():
        points[1 if "add" in nodeid.split("::")[1] else 2] += value
    assert readme_points(demo_course / DEMO_LAB) == points


def test_the_solution_gets_full_points_in_a_child_of_this_course(demo_course: Path) -> None:
    lab = _graded_lab(demo_course, "solution")
    assert _outcomes(lab) == {**dict.fromkeys(GRADED, "passed"), THIS_COURSE: "passed"}
    # The scaffold test checked, inside the child, that shared and the lab came from demo_course.
    assert _by_id(lab)[THIS_COURSE].scaffold and _by_id(lab)[THIS_COURSE].points == 0
    assert lab.score == lab.max_score == sum(GRADED.values())
    assert _by_id(lab)[HIDDEN].hidden and not _by_id(lab)[ADD].hidden
    assert _by_id(lab)[ADD].doc == "add() adds."
    assert lab.task_titles == {1: "Adding", 2: "Scaling"}


def test_the_skeleton_gets_nothing_each_test_failing_with_its_task(demo_course: Path) -> None:
    lab = _graded_lab(demo_course, "student")
    report = GradeReport(impl="student", labs=[lab])
    assert report.score == 0 and report.max_score == sum(GRADED.values())
    tests = _by_id(lab)
    assert tests[ADD].message.startswith("NotImplementedError: lab01 task 1: add is not written yet")
    assert tests[SCALE].message.startswith("NotImplementedError: lab01 task 2: scale is not written yet")
    # A task-2 test that builds on task 1 says so.
    assert tests[SUM_THEN_SCALE].message.startswith(
        "NotImplementedError: needs lab01 task 1 first: lab01 task 1: add is not written yet")
    assert tests[THIS_COURSE].outcome == "passed"  # scaffolding works on the skeleton too
    assert skeleton_problems(report) == []


def test_skeleton_problems_flags_tests_that_assert_nothing_or_need_a_later_task() -> None:
    def result(name: str, task: int, outcome: str, message: str) -> Result:
        return Result(nodeid=f"lab03_demo/tests/test_x.py::{name}", lab="lab03_demo", task=task,
                          points=1.0, outcome=outcome, message=message)

    lab = LabResult(lab="lab03_demo", tests=[
        result("test_ok", 2, "failed", "NotImplementedError: lab03 task 2: f is not written yet"),
        result("test_builds_on_1", 2, "failed",
               "NotImplementedError: needs lab03 task 1 first: lab03 task 1: g is not written yet"),
        result("test_builds_on_lab01", 2, "failed",
               "NotImplementedError: needs lab01 task 4 first: lab01 task 4: h is not written yet"),
        result("test_passes_on_skeleton", 2, "passed", ""),
        result("test_needs_a_later_task", 2, "failed",
               "NotImplementedError: needs lab03 task 5 first: lab03 task 5: k is not written yet"),
        result("test_wrong_error", 2, "failed", "AssertionError: assert 1 == 2"),
        result("test_skipped_here", 2, "skipped", "needs an NVIDIA GPU (CUDA)"),
    ])
    problems = skeleton_problems(GradeReport(impl="student", labs=[lab]))
    assert problems[0] == "the skeleton earned 1 points (expected 0)"
    flagged = sorted(p.split("::")[1].split(":")[0] for p in problems[1:])
    assert flagged == ["test_needs_a_later_task", "test_passes_on_skeleton", "test_wrong_error"]


def test_a_hung_test_fails_by_its_timeout_and_the_others_still_run(demo_course: Path, tmp_path: Path) -> None:
    course = prepare_submission(_misbehaving(tmp_path / "sub", "while True:\n            pass"), demo_course)
    try:
        lab = _graded_lab(course, "student", extra_args=["-o", "timeout=2"])
    finally:
        shutil.rmtree(course)
    tests = _by_id(lab)
    assert tests[SCALE].outcome == "failed"
    assert "Timeout" in tests[SCALE].message and "2" in tests[SCALE].message
    assert {n: o for n, o in _outcomes(lab).items() if n != SCALE} == dict.fromkeys(
        [ADD, ADD_NEGATIVE, SUM_THEN_SCALE, HIDDEN, THIS_COURSE], "passed")
    assert lab.score == sum(GRADED.values()) - GRADED[SCALE]


def test_a_run_stopped_by_the_lab_time_limit_blames_one_test(demo_course: Path, tmp_path: Path) -> None:
    """No per-test timeout: the grader's own limit on the child stops the hang."""
    course = prepare_submission(_misbehaving(tmp_path / "sub", "while True:\n            pass"), demo_course)
    progress: list[str] = []
    try:
        lab = _graded_lab(course, "student", timeout=8, extra_args=["-o", "timeout=0"],
                          on_progress=progress.append)
    finally:
        shutil.rmtree(course)
    tests = _by_id(lab)
    assert tests[SCALE].outcome == "error"
    assert tests[SCALE].message.startswith("the test run died in this test: the run was stopped after")
    assert "time limit" in tests[SCALE].message
    assert tests[SUM_THEN_SCALE].outcome == tests[ADD].outcome == tests[HIDDEN].outcome == "passed"
    assert lab.score == sum(GRADED.values()) - GRADED[SCALE]
    assert progress and SCALE in progress[0]


def test_os_exit_in_one_test_costs_that_test_only(demo_course: Path, tmp_path: Path) -> None:
    submission = _misbehaving(tmp_path / "sub", "os._exit(1)")
    report = grade(submission=submission, root=demo_course, labs=[DEMO_LAB])
    [lab] = report.labs
    assert set(_outcomes(lab)) == {*GRADED, THIS_COURSE}
    tests = _by_id(lab)
    assert tests[SCALE].outcome == "error"
    assert tests[SCALE].message.startswith("the test run died in this test: pytest exited with code 1")
    # The tests after it (in collection order) ran in a second child.
    assert tests[SUM_THEN_SCALE].outcome == tests[THIS_COURSE].outcome == "passed"
    assert tests[HIDDEN].outcome == tests[ADD].outcome == "passed"
    assert report.score == sum(GRADED.values()) - GRADED[SCALE]


def test_a_syntax_error_fails_every_test_and_still_gives_a_full_report(demo_course: Path,
                                                                       tmp_path: Path) -> None:
    submission = make_submission(tmp_path / "sub", "def add(a, b):\n    return a +\n")
    report = grade(submission=submission, root=demo_course, labs=[DEMO_LAB])
    [lab] = report.labs
    assert set(_outcomes(lab)) == {*GRADED, THIS_COURSE}
    for test in lab.tests:
        assert test.outcome == "failed", test
        assert "lab01_demo/src/calc.py" in test.message and "SyntaxError" in test.message, test.message
        assert "calc.py:2" in test.message, test.message
    assert report.score == 0 and report.max_score == sum(GRADED.values())

    written = tmp_path / "grade.json"
    written.write_text(json.dumps(report.to_json()))
    data = json.loads(written.read_text())
    assert (data["score"], data["max_score"]) == (0, sum(GRADED.values()))
    listed = [t["nodeid"] for task in data["labs"][0]["tasks"] for t in task["tests"]]
    assert sorted(listed) == sorted(GRADED)
    assert [t["nodeid"] for t in data["labs"][0]["scaffold_tests"]] == [THIS_COURSE]


def test_a_submission_cannot_change_tests_or_conftest(demo_course: Path, tmp_path: Path) -> None:
    # Task 1 written, task 2 left as the skeleton has it.
    partial = (demo_course / DEMO_LAB / "src" / "calc.py").read_text().replace(
        '    # TODO(lab01 task 1): return the sum of a and b.\n', "    return a + b\n")
    assert partial.count("raise NotImplementedError") == 2  # one for add (now unreachable), one for scale
    always_pass = ("import pytest\n\n@pytest.hookimpl(wrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
                   "    report = yield\n    report.outcome = 'passed'\n    return report\n")
    tampered_tests = ("import pytest\n\n@pytest.mark.task(2)\n@pytest.mark.points(100)\n"
                      "def test_free_points():\n    assert True\n")
    clean = make_submission(tmp_path / "clean", partial)
    tampered = make_submission(tmp_path / "tampered", partial, {
        "conftest.py": always_pass,
        f"{DEMO_LAB}/conftest.py": always_pass,
        f"{DEMO_LAB}/src/conftest.py": always_pass,
        f"{DEMO_LAB}/tests/conftest.py": always_pass,
        f"{DEMO_LAB}/tests/test_calc.py": tampered_tests,
        "shared/pytest_plugin.py": "raise SystemExit('tampered')\n",
        "pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-p no:shared.pytest_plugin'\n",
    })
    course = prepare_submission(tampered, demo_course)
    try:
        assert not (course / DEMO_LAB / "src" / "conftest.py").exists()
        assert (course / DEMO_LAB / "tests" / "test_calc.py").read_text() == (
            demo_course / DEMO_LAB / "tests" / "test_calc.py").read_text()
        assert (course / DEMO_LAB / "src" / "calc.py").read_text() == partial
    finally:
        shutil.rmtree(course)

    reports = [grade(submission=s, root=demo_course, labs=[DEMO_LAB]) for s in (clean, tampered)]
    summaries = [{t.nodeid: (t.outcome, t.points) for t in r.labs[0].tests} for r in reports]
    assert summaries[0] == summaries[1]
    assert reports[0].score == reports[1].score == GRADED[ADD] + GRADED[ADD_NEGATIVE] + GRADED[HIDDEN]
    assert _by_id(reports[1].labs[0])[SUM_THEN_SCALE].message.startswith(
        "NotImplementedError: lab01 task 2: scale is not written yet")


def test_submission_errors_are_clear(demo_course: Path, tmp_path: Path) -> None:
    with pytest.raises(GradingError, match="no such folder"):
        prepare_submission(tmp_path / "missing", demo_course)
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    with pytest.raises(GradingError, match=r"no lab folders in it \(expected one or more of lab01_demo/src/\)"):
        prepare_submission(tmp_path / "empty", demo_course)


def test_report_formats(demo_course: Path, tmp_path: Path) -> None:
    submission = _misbehaving(tmp_path / "sub", "return -1")  # scale wrong for factor 4
    report = grade(submission=submission, root=demo_course, labs=[DEMO_LAB])
    expected_score = sum(GRADED.values()) - GRADED[SCALE]

    data = json.loads(json.dumps(report.to_json()))
    assert (data["score"], data["max_score"], data["impl"]) == (expected_score, sum(GRADED.values()), "student")
    [lab] = data["labs"]
    assert [(t["task"], t["title"], t["score"], t["max_score"]) for t in lab["tasks"]] == [
        (1, "Adding", 4.0, 4.0), (2, "Scaling", 1.0, 3.0)]

    scope = json.loads(json.dumps(report.to_gradescope()))
    assert scope["score"] == expected_score
    assert len(scope["tests"]) == len(GRADED)  # graded tests only: the scaffold test carries no points
    for entry in scope["tests"]:
        assert {"name", "number", "score", "max_score", "status", "output", "visibility"} <= set(entry)
    by_name = {e["name"].split(": ")[-1]: e for e in scope["tests"]}
    assert by_name["test_add_large"]["visibility"] == "after_published"
    assert by_name["test_add"]["visibility"] == "visible"
    assert by_name["test_add"]["name"] == "lab01_demo task 1 (Adding): test_add"
    assert (by_name["test_add"]["status"], by_name["test_add"]["score"], by_name["test_add"]["output"]) == (
        "passed", 2.0, "add() adds.")
    scale = by_name["test_scale"]
    assert (scale["status"], scale["score"], scale["max_score"]) == ("failed", 0.0, 2.0)
    assert "assert -1 == 12" in scale["output"]
    assert sorted(e["number"] for e in scope["tests"]) == ["1.1.1", "1.1.2", "1.1.3", "1.2.1", "1.2.2"]


def test_a_test_file_that_cannot_be_imported_is_reported_not_blamed_on_another_test(tmp_path: Path) -> None:
    root = copy_course_base(tmp_path / "course")
    marks = "import pytest\n\n\n@pytest.mark.task(1)\n@pytest.mark.points(2)\n"
    write_files(root, {
        "lab05_broken/tests/test_a_fine.py": marks + "def test_fine():\n    assert True\n",
        "lab05_broken/tests/test_b_broken.py": "import not_a_module_of_this_course\n" + marks
                                               + "def test_never():\n    pass\n",
        "lab05_broken/tests/test_c_fine.py": marks + "def test_also_fine():\n    assert True\n",
    })
    lab = run_lab(root, "lab05_broken", "student")
    assert _outcomes(lab) == {"lab05_broken/tests/test_a_fine.py::test_fine": "passed",
                              "lab05_broken/tests/test_c_fine.py::test_also_fine": "passed"}
    assert lab.problem == ("lab05_broken: lab05_broken/tests/test_b_broken.py could not be collected, so its "
                           "tests are not graded: E   ModuleNotFoundError: No module named "
                           "'not_a_module_of_this_course'")
    report = GradeReport(impl="student", labs=[lab])
    assert lab.problem in skeleton_problems(report)
    assert report.to_gradescope()["tests"][-1]["name"] == "lab05_broken: could not run"


def test_a_lab_whose_tests_break_the_rules_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    root = copy_course_base(tmp_path / "course")
    write_files(root, {"lab06_rules/tests/test_x.py": "def test_unmarked():\n    assert True\n"})
    progress: list[str] = []
    lab = run_lab(root, "lab06_rules", "solution", on_progress=progress.append)
    assert [(t.nodeid, t.outcome, t.message) for t in lab.tests] == [
        ("lab06_rules/tests/test_x.py::test_unmarked", "not run", "")]  # nothing blamed on it
    assert progress == []  # and no second run
    assert lab.problem.startswith("lab06_rules: pytest could not run the tests (pytest exited with code 4)")
    assert "lab06_rules/tests/test_x.py::test_unmarked: every lab test needs a task(K) marker" in lab.problem
