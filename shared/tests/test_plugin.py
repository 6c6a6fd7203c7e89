"""The course's pytest plugin, run for real: child pytest processes in synthetic courses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.grading import GradeReport, run_lab, skeleton_problems

from .helpers import (
    DEMO_LAB,
    FAST_CHILD_ADDOPTS,
    child_env,
    copy_course_base,
    make_demo_course,
    run_pytest,
    write_files,
)

pytestmark = pytest.mark.usefixtures("fast_children")

NEXT_LAB = "lab02_next"
NEXT_TESTS = '''\
import pytest

from shared.impl import lab_module

calc = lab_module("lab01_demo", "calc")


@pytest.mark.task(1)
@pytest.mark.points(2)
def test_builds_on_lab01():
    assert calc.add(1, 2) == 3


@pytest.mark.task(2)
@pytest.mark.points(3)
@pytest.mark.parametrize("x", [1, 2, 3])
def test_shared_points(x):
    assert x > 0


@pytest.fixture
def three():
    return calc.add(1, 2)


@pytest.mark.task(4)
@pytest.mark.points(1)
def test_fixture_builds_on_lab01(three):
    assert three == 3


@pytest.mark.task(3)
@pytest.mark.points(1)
@pytest.mark.gpu
def test_on_gpu():
    assert calc.add(1, 1) == 2
'''


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def plugin_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo course plus ``lab02_next``, whose tests build on lab01 and need a GPU."""
    return make_demo_course(tmp_path_factory.mktemp("plugin") / "course", {
        f"{NEXT_LAB}/__init__.py": "",
        f"{NEXT_LAB}/tests/__init__.py": "",
        f"{NEXT_LAB}/tests/test_next.py": NEXT_TESTS,
    })


def _records(path: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    collected, results = {}, {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["event"] in {"collected", "result"}:
            (collected if record["event"] == "collected" else results)[record["nodeid"]] = record
    return collected, results


def test_an_earlier_tasks_not_implemented_error_says_which_task_is_needed(plugin_course: Path,
                                                                        tmp_path: Path) -> None:
    results_file = tmp_path / "results.jsonl"
    run = run_pytest(plugin_course, f"{DEMO_LAB}/tests/test_calc.py", f"--course-results={results_file}")
    assert run.returncode == 1
    assert ("E   NotImplementedError: needs lab01 task 1 first: "
            "lab01 task 1: add is not written yet (see lab01_demo/README.md, task 1)") in run.stdout
    _, results = _records(results_file)
    message = {nodeid.split("::")[1]: r["message"] for nodeid, r in results.items()}
    assert message["test_sum_then_scale"].startswith(
        "NotImplementedError: needs lab01 task 1 first: lab01 task 1: add is not written yet")
    # A test's own task, or a later one's error met first, is not rewritten.
    assert message["test_add"].startswith("NotImplementedError: lab01 task 1: add is not written yet")
    assert message["test_scale"].startswith("NotImplementedError: lab01 task 2: scale is not written yet")

    solution = run_pytest(plugin_course, f"{DEMO_LAB}/tests", "--impl=solution")
    assert solution.returncode == 0, solution.stdout


def test_across_labs_and_without_a_gpu(plugin_course: Path) -> None:
    """lab02 builds on lab01 (the rewrite names lab01); a gpu test skips, and is not gradable."""
    lab = run_lab(plugin_course, NEXT_LAB, "student")
    tests = {t.nodeid.split("::")[1]: t for t in lab.tests}
    for name in ("test_builds_on_lab01", "test_fixture_builds_on_lab01"):  # in the test, in a fixture
        assert tests[name].message.startswith("NotImplementedError: needs lab01 task 1 first: lab01 task 1:")
    assert (tests["test_builds_on_lab01"].outcome, tests["test_fixture_builds_on_lab01"].outcome) == (
        "failed", "error")
    # points(3) on a test with three cases: one point each.
    shared_points = [t for name, t in tests.items() if name.startswith("test_shared_points")]
    assert [(t.points, t.outcome) for t in shared_points] == [(1.0, "passed")] * 3

    gpu = tests["test_on_gpu"]
    if _cuda():
        assert gpu.outcome == "failed"  # it runs, on the skeleton
        return
    assert gpu.outcome == "not gradable"  # decided at collection; had it run, the skeleton would have failed it
    assert gpu.message == gpu.not_gradable == ("needs an NVIDIA GPU (CUDA); none is visible to torch here "
                                               "(not gradable on this machine)")
    report = GradeReport(impl="student", labs=[lab])
    assert (lab.score, lab.max_score, lab.not_gradable_points) == (3.0, 6.0, 1.0)
    assert report.to_json()["not_gradable_points"] == 1.0
    [entry] = [e for e in report.to_gradescope()["tests"] if "test_on_gpu" in e["name"]]
    assert "max_score" not in entry and entry["output"].startswith("Not gradable on this machine: needs an NVIDIA")
    # The parametrized test passes on the skeleton (it asserts nothing about lab02's code): flagged.
    problems = skeleton_problems(report)
    assert problems[0] == "the skeleton earned 3 points (expected 0)"
    assert len(problems) == 4 and all("test_shared_points" in p for p in problems[1:])


def test_task_option_runs_only_that_tasks_tests(demo_course: Path, tmp_path: Path) -> None:
    results_file = tmp_path / "results.jsonl"
    run = run_pytest(demo_course, f"{DEMO_LAB}/tests", "--impl=solution", "--task=2",
                     f"--course-results={results_file}")
    assert run.returncode == 0, run.stdout
    collected, results = _records(results_file)
    assert sorted(collected) == [f"{DEMO_LAB}/tests/test_calc.py::test_scale",
                                 f"{DEMO_LAB}/tests/test_calc.py::test_sum_then_scale"]
    assert {r["task"] for r in collected.values()} == {2}
    assert set(results) == set(collected)
    assert "2 passed, 3 deselected" in run.stdout  # the hidden file, task 1 only, is not even imported

    both = run_pytest(demo_course, f"{DEMO_LAB}/tests", "--impl=solution", "--task=1", "--task=2")
    assert "6 passed" in both.stdout and "deselected" not in both.stdout


BAD_TESTS = {
    "no task marker": ("@pytest.mark.points(1)\ndef test_bad():\n    pass\n",
                       "every lab test needs a task(K) marker"),
    "no points and not scaffold": ("@pytest.mark.task(1)\ndef test_bad():\n    pass\n",
                                   "every lab test needs a task(K) marker and either points(N) or scaffold"),
    "hidden outside tests/hidden": (
        "@pytest.mark.task(1)\n@pytest.mark.points(1)\n@pytest.mark.hidden\ndef test_bad():\n    pass\n",
        "hidden tests must live under lab07_bad/tests/hidden/"),
}


@pytest.mark.parametrize("case", sorted(BAD_TESTS))
def test_a_lab_test_without_its_markers_is_a_usage_error(tmp_path: Path, case: str) -> None:
    body, words = BAD_TESTS[case]
    root = copy_course_base(tmp_path / "course")
    write_files(root, {"lab07_bad/tests/test_bad.py": "import pytest\n\n\n" + body})
    run = run_pytest(root, "lab07_bad/tests")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "lab07_bad/tests/test_bad.py::test_bad" in run.stderr and words in run.stderr, run.stderr


def test_tests_outside_the_labs_need_no_markers(tmp_path: Path) -> None:
    root = copy_course_base(tmp_path / "course")
    write_files(root, {"tools/test_tool.py": "def test_tool():\n    assert True\n"})
    run = run_pytest(root, "tools")
    assert run.returncode == 0 and "1 passed" in run.stdout


def test_the_results_file_records_starts_results_and_a_collection_that_imported_no_lab_code(
        demo_course: Path, tmp_path: Path) -> None:
    results_file = tmp_path / "results.jsonl"
    run = run_pytest(demo_course, f"{DEMO_LAB}/tests", "--impl=solution", f"--course-results={results_file}")
    assert run.returncode == 0, run.stdout
    records = [json.loads(line) for line in results_file.read_text().splitlines()]
    events = [r["event"] for r in records]
    count = events.count("collected")
    assert events[count] == "collection_done" and records[count]["lab_code_imported"] == []
    assert events[count + 1:] == ["start", "result"] * count  # each test: its start, then its result
    collected = [r for r in records if r["event"] == "collected"]
    assert {r["timeout"] for r in collected} == {120.0}  # pyproject's timeout
    assert {r["not_gradable"] for r in collected} == {""}


GUARDED = """
import pytest

from shared.impl import lab_module

calc = lab_module("lab01_demo", "calc")


@pytest.mark.task(1)
@pytest.mark.points(1)
def test_patches():
    from _pytest.reports import BaseReport

    BaseReport.passed = property(lambda self: True)


@pytest.mark.task(1)
@pytest.mark.points(1)
def test_after():
    assert calc.add(1, 1) == 2
"""


def test_the_guard_reports_what_a_test_replaced_once(demo_course: Path, tmp_path: Path) -> None:
    root = make_demo_course(tmp_path / "course", {f"{DEMO_LAB}/tests/test_guarded.py": GUARDED})
    results_file = tmp_path / "results.jsonl"
    run_pytest(root, f"{DEMO_LAB}/tests/test_guarded.py", "--impl=solution", f"--course-results={results_file}")
    tamper = [json.loads(line) for line in results_file.read_text().splitlines() if '"tamper"' in line]
    assert tamper == [{"event": "tamper", "nodeid": f"{DEMO_LAB}/tests/test_guarded.py::test_patches",
                       "changed": ["_pytest.reports.BaseReport.passed"]}]


HYPOTHESIS_TESTS = """
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.task(1)
@pytest.mark.points(1)
def test_the_profile():
    assert settings.get_current_profile_name() == "course-grading"
    assert settings().deadline is None and settings().database is None


@pytest.mark.task(1)
@pytest.mark.points(1)
def test_no_explain_phase():
    from hypothesis import Phase

    assert Phase.explain not in settings().phases and Phase.shrink in settings().phases


@pytest.mark.task(1)
@pytest.mark.points(1)
@settings(max_examples=2)
@given(st.integers())
def test_slow_examples(x):
    time.sleep(0.25)  # over Hypothesis's default 200 ms deadline
"""


def test_grading_runs_hypothesis_without_a_deadline(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = copy_course_base(tmp_path / "course")
    write_files(root, {"lab08_h/tests/test_h.py": HYPOTHESIS_TESTS})
    env = child_env(root)
    # The fast children leave Hypothesis's plugin out: this one needs it (and only it).
    env["PYTEST_ADDOPTS"] = FAST_CHILD_ADDOPTS.replace("-p no:hypothesispytest", "")

    def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "lab08_h/tests", *args],
                              cwd=root, env=env, capture_output=True, text=True, timeout=300)

    # Outside grading the profile is Hypothesis's own ("default", or "ci" where a CI variable is set, which
    # drops the deadline too) less its explain phase: only the grading run may load the course's. (The slow
    # test would fail in a plain run off CI, slowly: it is shrunk.)
    plain = pytest_run("-k", "test_the_profile")
    assert plain.returncode == 1 and "AssertionError" in plain.stdout, plain.stdout[-2000:]
    graded = pytest_run(f"--course-results={tmp_path / 'r.jsonl'}")
    assert graded.returncode == 0 and "3 passed" in graded.stdout, graded.stdout[-2000:]
    # Hypothesis's "explain" phase is off in every run (its report points into library code).
    unexplained = pytest_run("-k", "test_no_explain_phase")
    assert unexplained.returncode == 0 and "1 passed" in unexplained.stdout, unexplained.stdout[-2000:]


def test_task_option_does_not_import_other_tasks_files(tmp_path: Path) -> None:
    root = copy_course_base(tmp_path / "course")
    marks = "import pytest\n\npytestmark = pytest.mark.task({})\n\n\n@pytest.mark.points(1)\ndef test_{}():\n    pass\n"
    write_files(root, {
        "lab07_t/tests/test_task1_a.py": marks.format(1, "one"),
        "lab07_t/tests/test_task2_b.py": 'raise RuntimeError("task 2\'s file was imported")\n' + marks.format(2, "two"),
        # Tasks the text does not state (a variable): collected, and the --task filter decides as before.
        "lab07_t/tests/test_unstated.py": "import pytest\n\nK = 1\npytestmark = pytest.mark.task(K)\n\n\n"
                                          "@pytest.mark.points(1)\ndef test_unstated():\n    pass\n",
        "lab07_t/tests/hidden/test_hidden_mixed.py": "import pytest\n\n\n@pytest.mark.task(2)\n@pytest.mark.points(1)\n"
                                                     "def test_h2():\n    pass\n\n\n@pytest.mark.task(1)\n"
                                                     "@pytest.mark.points(1)\ndef test_h1():\n    pass\n",
    })
    run = run_pytest(root, "lab07_t/tests", "--task=1", "-q")
    assert run.returncode == 0, run.stdout
    assert "3 passed, 1 deselected" in run.stdout  # test_one, test_unstated, test_h1; test_h2 deselected
    whole = run_pytest(root, "lab07_t/tests", "-q")
    assert whole.returncode == 2 and "task 2's file was imported" in whole.stdout  # so the file really is skipped


def test_a_missing_model_folder_is_a_usage_error_naming_the_option(demo_course: Path, tmp_path: Path) -> None:
    run = run_pytest(demo_course, f"{DEMO_LAB}/tests", f"--model={tmp_path / 'nowhere'}")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"--model {tmp_path / 'nowhere'}: no such folder" in run.stderr and "COURSE_MODEL" not in run.stderr
