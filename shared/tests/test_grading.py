"""The grader, end to end: child pytest runs on a synthetic course, crashes and hangs included.

(The dishonest submissions of issue 7 have their own file: ``test_grading_attacks.py``.)
"""

from __future__ import annotations

import json
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
from shared.grading import run as grading_run
from shared.grading.gradescope import validate

from .helpers import DEMO_LAB, DEMO_SOLUTION, copy_course_base, make_submission, write_files

pytestmark = pytest.mark.usefixtures("fast_children")

ADD = "lab01_demo/tests/test_calc.py::test_add"
ADD_NEGATIVE = "lab01_demo/tests/test_calc.py::test_add_negative"
SCALE = "lab01_demo/tests/test_calc.py::test_scale"
SUM_THEN_SCALE = "lab01_demo/tests/test_calc.py::test_sum_then_scale"
THIS_COURSE = "lab01_demo/tests/test_calc.py::test_runs_in_this_course"
HIDDEN = "lab01_demo/tests/hidden/test_hidden_calc.py::test_add_large"
GRADED = {ADD: 2, ADD_NEGATIVE: 1, SCALE: 2, SUM_THEN_SCALE: 1, HIDDEN: 1}
FULL = sum(GRADED.values())

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


def _graded(submission: Path, root: Path, **kwargs) -> LabResult:
    report = grade(submission=submission, root=root, labs=[DEMO_LAB], **kwargs)
    [lab] = report.labs
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


def test_every_task_heading_is_read_and_announced_hidden_tests_are_no_mismatch(tmp_path: Path) -> None:
    """Issue 20: "(2.5 points, needs vLLM)" and a heading without a title were not read (lab02 task 10
    showed as a bare "10", "README 0"); the student edition, which has no hidden tests, was told its
    tests' points differ from the README's by exactly the hidden points the README announces."""
    from shared.grading.collect import readme_mismatch

    lab = tmp_path / "lab09_x"
    lab.mkdir()
    (lab / "README.md").write_text(
        "| Task | Points |\n|---|---|\n| 1 | 3 |\n| 2 | 2.5 |\n| 3 | 4 |\n"
        "| | **total** | **9.5** (2 of them in hidden tests the grader runs) |\n\n"
        "### Task 1 — Add (3 points)\n\n### Task 2 — Real vLLM, side by side (2.5 points, needs vLLM)\n\n"
        "### Task 3 (4 points)\n", encoding="utf-8")
    assert readme_points(lab) == {1: 3.0, 2: 2.5, 3: 4.0}
    assert task_titles(lab) == {1: "Add", 2: "Real vLLM, side by side", 3: ""}

    def tests(*points: tuple[int, float, bool]) -> list[Result]:
        return [Result(nodeid=f"t{i}", lab=lab.name, task=task, points=value, hidden=hidden)
                for i, (task, value, hidden) in enumerate(points)]

    everything = tests((1, 2.0, False), (1, 1.0, True), (2, 2.5, False), (3, 3.0, False), (3, 1.0, True))
    assert readme_mismatch(tmp_path, lab.name, everything) == ""
    edition = [test for test in everything if not test.hidden]  # short by the 2 announced points
    assert readme_mismatch(tmp_path, lab.name, edition) == ""
    # Any other difference is still reported, with the task's README points.
    assert "task 2: tests 0, README 2.5" in readme_mismatch(tmp_path, lab.name, edition[:1] + edition[2:])
    assert "task 3: tests 3, README 4" in readme_mismatch(tmp_path, lab.name, edition[:1] + edition[2:])
    more = [*edition, *tests((1, 2.0, False))]  # short 1 on task 3, over 1 on task 1: not the hidden tests
    assert "task 1: tests 4, README 3" in readme_mismatch(tmp_path, lab.name, more)
    with_hidden = [test for test in everything if test.nodeid != "t1"]  # a hidden test itself is missing
    assert "task 1: tests 2, README 3" in readme_mismatch(tmp_path, lab.name, with_hidden)


def test_the_solution_gets_full_points_in_a_child_of_this_course(demo_course: Path) -> None:
    lab = run_lab(demo_course, DEMO_LAB, "solution")
    assert _outcomes(lab) == {**dict.fromkeys(GRADED, "passed"), THIS_COURSE: "passed"}
    # The scaffold test checked, inside the child, that shared and the lab came from demo_course.
    assert _by_id(lab)[THIS_COURSE].scaffold and _by_id(lab)[THIS_COURSE].points == 0
    assert lab.score == lab.max_score == FULL
    assert _by_id(lab)[HIDDEN].hidden and not _by_id(lab)[ADD].hidden
    assert _by_id(lab)[ADD].doc == "add() adds."
    assert lab.task_titles == {1: "Adding", 2: "Scaling"}
    assert lab.integrity == [] and not lab.withheld  # the plugin's guard saw nothing replaced
    assert lab.notes == []  # the tests' points per task are the README's

    from shared.grading.collect import readme_mismatch

    lab.tests[0].points += 1
    assert readme_mismatch(demo_course, DEMO_LAB, lab.tests).startswith(
        "lab01_demo: the tests' points differ from the README's (task ")


def test_the_skeleton_gets_nothing_each_test_failing_with_its_task(demo_course: Path) -> None:
    lab = run_lab(demo_course, DEMO_LAB, "student")
    report = GradeReport(impl="student", labs=[lab])
    assert report.score == 0 and report.max_score == FULL
    tests = _by_id(lab)
    assert tests[ADD].message.startswith("NotImplementedError: lab01 task 1: add is not written yet")
    assert tests[SCALE].message.startswith("NotImplementedError: lab01 task 2: scale is not written yet")
    # A task-2 test that builds on task 1 says so.
    assert tests[SUM_THEN_SCALE].message.startswith(
        "NotImplementedError: needs lab01 task 1 first: lab01 task 1: add is not written yet")
    assert tests[THIS_COURSE].outcome == "passed"  # scaffolding works on the skeleton too
    assert skeleton_problems(report) == []


def test_skeleton_problems_flags_tests_that_assert_nothing_or_need_a_later_task() -> None:
    def result(name: str, task: int, outcome: str, message: str, not_gradable: str = "") -> Result:
        return Result(nodeid=f"lab03_demo/tests/test_x.py::{name}", lab="lab03_demo", task=task,
                      points=1.0, outcome=outcome, message=message, not_gradable=not_gradable)

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
        result("test_skipped_here", 2, "not gradable", "", not_gradable="needs an NVIDIA GPU (CUDA)"),
    ])
    problems = skeleton_problems(GradeReport(impl="student", labs=[lab]))
    assert problems[0] == "the skeleton earned 1 points (expected 0)"
    flagged = sorted(p.split("::")[1].split(":")[0] for p in problems[1:])
    assert flagged == ["test_needs_a_later_task", "test_passes_on_skeleton", "test_wrong_error"]


def test_a_hung_test_fails_by_its_timeout_and_the_others_still_run(demo_course: Path, tmp_path: Path) -> None:
    lab = _graded(_misbehaving(tmp_path / "sub", "while True:\n            pass"), demo_course,
                  extra_args=["-o", "timeout=2"])
    tests = _by_id(lab)
    assert tests[SCALE].outcome == "failed"
    assert "Timeout" in tests[SCALE].message and "2" in tests[SCALE].message
    assert {n: o for n, o in _outcomes(lab).items() if n != SCALE} == dict.fromkeys(
        [ADD, ADD_NEGATIVE, SUM_THEN_SCALE, HIDDEN, THIS_COURSE], "passed")
    assert lab.score == FULL - GRADED[SCALE]


def test_a_hang_that_swallows_its_timeout_is_stopped_by_the_parent(demo_course: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that catches pytest-timeout's exception (as Hypothesis does) keeps running: the parent's
    hard per-test limit stops it, blames that test, and the others still run."""
    monkeypatch.setattr(grading_run, "HARD_LIMIT_FACTOR", 1.0)
    monkeypatch.setattr(grading_run, "HARD_LIMIT_GRACE_S", 2.0)
    swallow = ("import time\n        while True:\n            try:\n                time.sleep(0.05)\n"
               "            except BaseException:\n                pass")
    progress: list[str] = []
    lab = _graded(_misbehaving(tmp_path / "sub", swallow), demo_course, extra_args=["-o", "timeout=3"],
                  on_progress=progress.append)
    tests = _by_id(lab)
    assert tests[SCALE].outcome == "error"
    assert tests[SCALE].message.startswith("the test run died in this test: it ran past its hard time limit "
                                           "of 5 s (3 s of its own, which did not stop it)")
    assert tests[SUM_THEN_SCALE].outcome == tests[ADD].outcome == tests[HIDDEN].outcome == "passed"
    assert lab.score == FULL - GRADED[SCALE]
    assert any(SCALE in line for line in progress)


def test_os_exit_in_one_test_costs_that_test_only(demo_course: Path, tmp_path: Path) -> None:
    lab = _graded(_misbehaving(tmp_path / "sub", "os._exit(1)"), demo_course)
    tests = _by_id(lab)
    assert tests[SCALE].outcome == "error"
    assert tests[SCALE].message.startswith("the test run died in this test: the test process exited with code 1")
    # The tests after it (in collection order) ran in a second child.
    assert tests[SUM_THEN_SCALE].outcome == tests[THIS_COURSE].outcome == "passed"
    assert tests[HIDDEN].outcome == tests[ADD].outcome == "passed"
    assert lab.score == FULL - GRADED[SCALE]
    assert lab.integrity and "os._exit" in lab.integrity[0].what and not lab.withheld  # flagged, not withheld


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
    assert report.score == 0 and report.max_score == FULL

    written = tmp_path / "grade.json"
    written.write_text(json.dumps(report.to_json()))
    data = json.loads(written.read_text())
    assert (data["score"], data["max_score"]) == (0, FULL)
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
    copy, found, notes = prepare_submission(tampered, demo_course, tmp_path / "copy")
    assert found == {DEMO_LAB}
    assert not (copy / DEMO_LAB / "src" / "conftest.py").exists()
    assert (copy / DEMO_LAB / "tests" / "test_calc.py").read_text() == (
        demo_course / DEMO_LAB / "tests" / "test_calc.py").read_text()
    assert (copy / DEMO_LAB / "src" / "calc.py").read_text() == partial
    assert f"{DEMO_LAB}/src/conftest.py: a conftest.py in src/ is refused (only the course's own count)" in notes
    assert any(n.startswith(f"{DEMO_LAB}/tests/test_calc.py: ignored (only {DEMO_LAB}/src/ is graded") for n in notes)

    reports = [grade(submission=s, root=demo_course, labs=[DEMO_LAB]) for s in (clean, tampered)]
    summaries = [{t.nodeid: (t.outcome, t.points) for t in r.labs[0].tests} for r in reports]
    assert summaries[0] == summaries[1]
    assert reports[0].score == reports[1].score == GRADED[ADD] + GRADED[ADD_NEGATIVE] + GRADED[HIDDEN]
    assert _by_id(reports[1].labs[0])[SUM_THEN_SCALE].message.startswith(
        "NotImplementedError: lab01 task 2: scale is not written yet")


def test_the_grading_copy_is_the_student_edition_plus_hidden_tests(tmp_path: Path) -> None:
    from .helpers import make_demo_course

    course = make_demo_course(tmp_path / "course", {f"{DEMO_LAB}/instructor/mutants.py": "MUTANTS = []\n"})
    copy, _, _ = prepare_submission(make_submission(tmp_path / "sub", DEMO_SOLUTION), course, tmp_path / "copy")
    assert not (copy / DEMO_LAB / "solution").exists()
    assert not (copy / DEMO_LAB / "instructor").exists()
    assert not (copy / "shared" / "tests").exists()
    assert (copy / DEMO_LAB / "tests" / "hidden" / "test_hidden_calc.py").is_file()
    assert (copy / "conftest.py").is_file() and (copy / "shared" / "pytest_plugin.py").is_file()


def test_report_formats(demo_course: Path, tmp_path: Path) -> None:
    submission = _misbehaving(tmp_path / "sub", "return -1")  # scale wrong for factor 4
    report = grade(submission=submission, root=demo_course, labs=[DEMO_LAB])
    expected_score = FULL - GRADED[SCALE]

    data = json.loads(json.dumps(report.to_json()))
    assert (data["score"], data["max_score"], data["impl"]) == (expected_score, FULL, "student")
    [lab] = data["labs"]
    assert [(t["task"], t["title"], t["score"], t["max_score"]) for t in lab["tasks"]] == [
        (1, "Adding", 4.0, 4.0), (2, "Scaling", 1.0, 3.0)]
    assert data["integrity"] == [] and lab["withheld"] == ""

    scope = json.loads(json.dumps(report.to_gradescope()))
    assert validate(scope) == []
    assert scope["score"] == expected_score and isinstance(scope["execution_time"], int)
    assert scope["output_format"] == "text" and scope["stdout_visibility"] == "hidden"
    assert len(scope["tests"]) == len(GRADED)  # graded tests only: the scaffold test carries no points
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


def test_gradescope_not_gradable_tests_rounding_and_validation() -> None:
    def result(name: str, points: float, outcome: str, **kwargs) -> Result:
        return Result(nodeid=f"lab02_x/tests/test_x.py::{name}", lab="lab02_x", task=1, points=points,
                      outcome=outcome, **kwargs)

    thirds = [result(f"test_case[{i}]", 1 / 3 * 10, "passed") for i in range(3)]
    gpu = result("test_on_gpu", 2.0, "not gradable", not_gradable="needs an NVIDIA GPU (CUDA); none here")
    lab = LabResult(lab="lab02_x", tests=[*thirds, gpu])
    report = GradeReport(impl="student", labs=[lab], seconds=12.6)
    assert (report.score, report.max_score, report.not_gradable_points) == (10.0, 10.0, 2.0)  # no float noise
    scope = report.to_gradescope()
    assert validate(scope) == []
    assert scope["score"] == 10.0 and scope["execution_time"] == 13
    [entry] = [e for e in scope["tests"] if "test_on_gpu" in e["name"]]
    assert entry["name"].endswith("(not gradable on this machine)")
    assert "score" not in entry and "max_score" not in entry and "status" not in entry  # informational
    assert entry["output"].startswith("Not gradable on this machine: needs an NVIDIA GPU")
    assert "2 more points are not gradable on this machine" in scope["output"]
    assert [e["score"] for e in scope["tests"] if "score" in e] == [3.33, 3.33, 3.33]

    assert validate({"score": float("nan")})
    assert validate({"tests": [{"score": 3, "max_score": 2, "status": "ok", "visibility": "secret", "x": 1}]}) == [
        "tests[0]: unknown key 'x'", "tests[0]: score 3 is above max_score 2",
        "tests[0].status must be one of ['failed', 'passed'], got 'ok'",
        "tests[0].visibility must be one of ['after_due_date', 'after_published', 'hidden', 'visible'], "
        "got 'secret'"]


def test_a_submission_that_cannot_be_graded_still_gets_a_results_file(demo_course: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "other" / "notes").mkdir(parents=True)
    for folder, words in ((tmp_path / "missing", "missing: no such folder"), (tmp_path / "a_file", "no such folder"),
                          (tmp_path / "empty", "empty: the folder is empty"),
                          (tmp_path / "other", r"no lab folders in it \(expected one or more of lab01_demo/src/\)")):
        report = grade(submission=folder, root=demo_course)
        assert report.labs == [] and report.score == 0
        import re

        assert re.search(words, report.problem), report.problem
        scope = report.to_gradescope()
        assert validate(scope) == [] and scope["score"] == 0
        assert scope["output"].startswith("This submission could not be graded: ")
        assert report.to_json()["problem"] == report.problem
    with pytest.raises(GradingError, match="--impl solution makes no sense"):
        grade(submission=tmp_path / "other", root=demo_course, impl="solution")


def test_a_repository_inside_a_folder_is_found_and_a_missing_lab_is_not_run(demo_course: Path,
                                                                           tmp_path: Path) -> None:
    make_submission(tmp_path / "upload" / "my-course", DEMO_SOLUTION)
    report = grade(submission=tmp_path / "upload", root=demo_course)
    assert report.notes[0] == "graded the course found in my-course/ inside the submission"
    assert report.score == FULL

    (tmp_path / "nolab" / DEMO_LAB).mkdir(parents=True)
    report = grade(submission=tmp_path / "nolab", root=demo_course)
    [lab] = report.labs
    assert (lab.score, lab.max_score) == (0, FULL)  # the denominator does not depend on the submission
    assert {t.message for t in lab.tests} == {f"not run: {DEMO_LAB}/src/ is not in the submission"}


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
    assert lab.tests == [] and progress == []  # nothing collected, nothing run, nothing blamed
    assert lab.problem.startswith("lab06_rules: pytest could not collect the tests (exit code 4)")
    assert "lab06_rules/tests/test_x.py::test_unmarked: every lab test needs a task(K) marker" in lab.problem


def test_a_collection_that_imports_lab_code_is_refused(tmp_path: Path) -> None:
    """The expected tests must come from a collection that ran no lab code: a test module that
    imports the code under test at its top level makes the lab a problem, not a score."""
    root = copy_course_base(tmp_path / "course")
    write_files(root, {
        "lab07_eager/__init__.py": "", "lab07_eager/src/__init__.py": "", "lab07_eager/src/m.py": "X = 1\n",
        "lab07_eager/tests/__init__.py": "",
        "lab07_eager/tests/test_m.py": ("import pytest\n\nfrom lab07_eager.src import m\n\n\n"
                                        "@pytest.mark.task(1)\n@pytest.mark.points(1)\ndef test_x():\n"
                                        "    assert m.X == 1\n"),
    })
    lab = run_lab(root, "lab07_eager", "student")
    assert lab.tests == []
    assert lab.problem == ("lab07_eager: collecting its tests imported lab code (lab07_eager.src, "
                           "lab07_eager.src.m); tests must import it lazily through shared.impl.lab_module")


def test_the_command_writes_its_results_files_even_when_nothing_can_be_graded(tmp_path: Path) -> None:
    from .helpers import run_cli

    for submission in (tmp_path / "missing", tmp_path / "results"):  # the second: a folder with no lab
        (tmp_path / "results").mkdir(exist_ok=True)
        scope, full = tmp_path / "results" / "results.json", tmp_path / "results" / "grade.json"
        run = run_cli("grade", "--submission", str(submission), "--gradescope", str(scope), "--json", str(full))
        assert run.returncode == 2 and run.stderr.startswith(f"course grade: --submission {submission}: ")
        data = json.loads(scope.read_text())
        assert validate(data) == [] and data["score"] == 0
        assert data["output"].startswith(f"This submission could not be graded: {submission}: ")
        assert json.loads(full.read_text())["problem"].startswith(f"{submission}: ")


@pytest.mark.timeout(600)  # two children import torch and transformers: 1 min idle, more on a busy machine
def test_a_real_submission_of_lab01_task_1_end_to_end(tmp_path: Path) -> None:
    """The real lab01 (in a copy of the course, which nobody edits while it is graded): a
    submission holding the reference as its src gets task 1's full gradable points, with an
    empty integrity report and nothing withheld; the solution itself is not in the grading copy."""
    from shared.release import course_files

    from .helpers import MAIN

    lab = "lab01_huggingface"
    course = tmp_path / "course"
    for relative in course_files(MAIN):
        # lab03's given llama.cpp helpers build the tokenizer-convention model folders lab01's tests use
        if relative.parts[0] in {lab, "lab03_llama_cpp", "shared", "conftest.py", "pyproject.toml"}:
            (course / relative).parent.mkdir(parents=True, exist_ok=True)
            (course / relative).write_bytes((MAIN / relative).read_bytes())
    submission = tmp_path / "submission" / lab
    for path in (MAIN / lab / "solution").glob("*.py"):
        write_files(submission, {f"src/{path.name}": path.read_text()})
    report = grade(submission=tmp_path / "submission", root=course, labs=[lab], tasks=[1])
    [result] = report.labs
    assert (result.problem, result.withheld, result.integrity) == ("", "", [])
    assert {t.task for t in result.tests} == {1}
    assert report.score == report.max_score > 0, [(t.nodeid, t.outcome, t.message[:200]) for t in result.tests]
    assert validate(report.to_gradescope()) == []


def test_hypothesis_in_a_graded_run_writes_nothing_into_the_copy(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis keeps caches in ``.hypothesis/`` of the working folder: in grading, the
    child's own home holds them, so an honest run does not look like one that changed the copy."""
    from .helpers import FAST_CHILD_ADDOPTS, make_demo_course

    tests = ("import pytest\nfrom hypothesis import given\nfrom hypothesis import strategies as st\n\n"
             "from shared.impl import lab_module\n\ncalc = lab_module('lab01_demo', 'calc')\n\n\n"
             "@pytest.mark.task(1)\n@pytest.mark.points(1)\n@given(st.text(), st.integers(), st.integers())\n"
             "def test_add_commutes(text, a, b):\n    assert calc.add(a, b) == calc.add(b, a)\n")
    course = make_demo_course(tmp_path / "course", {f"{DEMO_LAB}/tests/test_property.py": tests})
    monkeypatch.setenv("PYTEST_ADDOPTS", FAST_CHILD_ADDOPTS.replace("-p no:hypothesispytest", ""))
    report = grade(submission=make_submission(tmp_path / "sub", DEMO_SOLUTION), root=course, labs=[DEMO_LAB])
    [lab] = report.labs
    assert (report.score, lab.withheld, lab.integrity) == (FULL + 1, "", [])


def test_the_graders_cgroup_is_found_in_v1_and_v2_layouts(tmp_path: Path) -> None:
    """``limits.py`` maps ``/proc/self/cgroup`` onto the mounts (a container's cgroup mounted at
    its own root included) and sets the tree's limits in a child cgroup; a layout that cannot
    hand the memory controller on says why. (The kernel's side is tested where a cgroup is
    writable: ``test_processes_forked_by_the_graded_code_share_one_memory_limit``.)"""
    from shared.grading.limits import _folder, _mounts, _own_cgroups, _try_v1, _try_v2

    own = _own_cgroups("4:memory:/docker/abc\n8:pids:/docker/abc\n1:cpu,cpuacct:/\n0::/docker/abc/init\n")
    assert own == {"memory": "/docker/abc", "pids": "/docker/abc", "cpu": "/", "cpuacct": "/",
                   "": "/docker/abc/init"}
    mounts = _mounts(f"35 31 0:32 /docker/abc {tmp_path}/memory rw,relatime - cgroup cgroup rw,memory\n"
                     f"39 31 0:36 / {tmp_path}/pids rw - cgroup cgroup rw,pids\n"
                     f"41 31 0:38 /docker {tmp_path}/unified rw - cgroup2 cgroup2 rw\n"
                     "22 1 0:21 / /proc rw - proc proc rw\n")
    assert [(root, kind, "memory" in options) for root, _, kind, options in mounts] == [
        ("/docker/abc", "cgroup", True), ("/", "cgroup", False), ("/docker", "cgroup2", False)]
    for folder in ("memory", "pids/docker/abc", "unified/abc/init"):
        (tmp_path / folder).mkdir(parents=True)
    assert _folder(mounts, "cgroup", "memory", "/docker/abc") == tmp_path / "memory"  # mounted at its own root
    assert _folder(mounts, "cgroup2", "", "/docker/abc/init") == tmp_path / "unified" / "abc" / "init"
    assert _folder(mounts, "cgroup", "memory", "/elsewhere") is None

    v2 = tmp_path / "unified" / "abc" / "init"
    (v2 / "cgroup.controllers").write_text("cpu io\n")
    (v2 / "cgroup.subtree_control").write_text("\n")
    assert _try_v2(own, mounts, 1 << 30, 64) == (None, f"the memory controller is not available in {v2} (cgroup v2)")
    (v2 / "cgroup.subtree_control").write_text("memory pids\n")
    limit, why = _try_v2(own, mounts, 1 << 30, 64)
    assert why == "" and limit is not None and limit.version == 2 and limit.max_processes == 64
    assert (limit.memory.parent, (limit.memory / "memory.max").read_text()) == (v2, str(1 << 30))
    assert (limit.memory / "memory.swap.max").read_text() == "0"

    limit, why = _try_v1(own, mounts, 1 << 30, 64)
    assert why == "" and limit is not None and limit.version == 1 and limit.max_processes == 64
    assert limit.memory.parent == tmp_path / "memory" and limit.pids is not None
    assert limit.pids.parent == tmp_path / "pids" / "docker" / "abc"
    assert (limit.memory / "memory.limit_in_bytes").read_text() == str(1 << 30)
    assert limit.describe() == "1.0 GiB of memory, 64 processes and threads for the whole process tree (cgroup v1)"
