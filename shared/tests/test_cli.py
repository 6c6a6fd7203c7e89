"""The ``course`` command, run as a person runs it (``python -m shared.cli`` in a subprocess)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from .helpers import DEMO_LAB, run_cli


def _one_line_error(run, *words: str) -> str:
    """A usage mistake ends in exit code 2 and one readable line, without a traceback."""
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_test_with_an_unknown_lab_lists_the_labs() -> None:
    line = _one_line_error(run_cli("test", "lab99"), "no lab named 'lab99'", "lab01_huggingface")
    assert line.startswith("course test: ")


def test_grade_with_a_missing_submission_folder(tmp_path: Path) -> None:
    _one_line_error(run_cli("grade", "--submission", str(tmp_path / "nonexistent")), "no such folder",
                    str(tmp_path / "nonexistent"))
    _one_line_error(run_cli("grade", "--submission", "/nonexistent"), "--submission /nonexistent")


def test_grade_with_a_submission_holding_no_lab(tmp_path: Path) -> None:
    (tmp_path / "homework" / "notes.txt").parent.mkdir()
    (tmp_path / "homework" / "notes.txt").write_text("nothing here")
    _one_line_error(run_cli("grade", "--submission", str(tmp_path / "homework")),
                    "no lab folders in it", "lab01_huggingface/src/")


def test_grade_with_an_unknown_lab_or_a_missing_output_folder(tmp_path: Path) -> None:
    _one_line_error(run_cli("grade", "--lab", "lab99"), "no lab named 'lab99'")
    _one_line_error(run_cli("grade", "--json", str(tmp_path / "missing" / "grade.json")),
                    "--json", "its folder does not exist")


def test_check_is_quick_and_reports_the_frameworks() -> None:
    started = time.monotonic()
    run = run_cli("check")
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    assert seconds < 5, f"course check took {seconds:.1f} s"
    import torch

    for words in ("This machine", "Frameworks", "What runs here", "torch", torch.__version__, "transformers",
                  "A 7B model", "Fixture models"):
        assert words in run.stdout, words


def test_stubs_check_passes_on_this_course() -> None:
    run = run_cli("stubs", "--check")
    assert run.returncode == 0, run.stderr
    assert "skeletons match their solutions" in run.stdout


# --------------------------------------------------------------------------------------------
# In a synthetic course (its own copy of shared, so the command works on that course)


@pytest.fixture
def course(demo_course: Path, tmp_path: Path) -> Path:
    """A private copy of the demo course, free to change."""
    return Path(shutil.copytree(demo_course, tmp_path / "course"))


def test_stubs_check_finds_drift_and_stubs_fixes_it(course: Path) -> None:
    skeleton = course / DEMO_LAB / "src" / "calc.py"
    assert run_cli("stubs", "--check", cwd=course).returncode == 0
    skeleton.write_text(skeleton.read_text().replace("for value in values:", "for value in reversed(values):"))
    run = run_cli("stubs", "--check", cwd=course)
    assert run.returncode == 1
    assert "lab01_demo/src/calc.py: differs from its solution" in run.stderr

    run = run_cli("stubs", cwd=course)
    assert run.returncode == 0 and "wrote lab01_demo/src/calc.py" in run.stdout
    assert "reversed" not in skeleton.read_text()
    assert run_cli("stubs", "--check", cwd=course).returncode == 0


def test_stubs_reports_a_malformed_marker_in_one_line(course: Path) -> None:
    solution = course / DEMO_LAB / "solution" / "calc.py"
    solution.write_text(solution.read_text().replace("    # END SOLUTION\n", "", 1))
    _one_line_error(run_cli("stubs", cwd=course), f"{solution}:25:", "cannot nest")


def test_release_refuses_an_out_inside_the_course_and_writes_one_outside(course: Path, tmp_path: Path) -> None:
    _one_line_error(run_cli("release", "--out", str(course / "edition"), cwd=course), "inside the course")
    run = run_cli("release", "--out", str(tmp_path / "edition"), cwd=course)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "edition" / DEMO_LAB / "src" / "calc.py").exists()
    assert not (tmp_path / "edition" / DEMO_LAB / "solution").exists()
    _one_line_error(run_cli("release", "--out", str(tmp_path / "edition"), cwd=course), "not empty")


def test_test_and_grade_in_a_course(demo_course: Path, tmp_path: Path) -> None:
    run = run_cli("test", "demo", "--impl", "solution", "--", "-q", cwd=demo_course)
    assert run.returncode == 0, run.stdout
    assert "6 passed" in run.stdout
    run = run_cli("test", "1", "--task", "2", cwd=demo_course)
    assert run.returncode == 1 and "2 failed" in run.stdout

    grade_json, scope_json = tmp_path / "grade.json", tmp_path / "results.json"
    run = run_cli("grade", "--impl", "solution", "--json", str(grade_json), "--gradescope", str(scope_json),
                  cwd=demo_course)
    assert run.returncode == 0, run.stderr
    assert "Total: 7 / 7 points" in run.stdout
    assert json.loads(grade_json.read_text())["score"] == 7
    assert json.loads(scope_json.read_text())["score"] == 7

    run = run_cli("grade", "--expect-skeleton", cwd=demo_course)
    assert run.returncode == 0, run.stderr
    assert "Total: 0 / 7 points" in run.stdout and "skeleton check: every graded test fails" in run.stdout


def test_mutants_mistakes_end_in_one_line(course: Path) -> None:
    _one_line_error(run_cli("mutants", "lab99"), "no lab named 'lab99'")
    _one_line_error(run_cli("mutants", DEMO_LAB, cwd=course), "has no instructor/mutants*.py yet")
    (course / DEMO_LAB / "instructor").mkdir()
    (course / DEMO_LAB / "instructor" / "mutants.py").write_text(
        'MUTANTS = [{"task": 1, "file": "calc.py", "find": "nowhere", "replace": "x", "why": "w"}]\n')
    _one_line_error(run_cli("mutants", DEMO_LAB, cwd=course), "entry 1", "'find' occurs 0 times")


def test_mutants_list_and_sample_spread_over_the_tasks(course: Path) -> None:
    (course / DEMO_LAB / "instructor").mkdir()
    (course / DEMO_LAB / "instructor" / "mutants.py").write_text("MUTANTS = [\n" + "".join(
        f'    {{"task": {task}, "file": "calc.py", "find": "{find}", "replace": "{find}  # {n}", "why": "w{n}"}},\n'
        for n, (task, find) in enumerate([(1, "total = a + b")] * 4 + [(2, "product = x * factor")] * 2)) + "]\n")
    listed = run_cli("mutants", DEMO_LAB, "--list", cwd=course)
    assert listed.returncode == 0, listed.stderr
    assert "6 mutant(s)" in listed.stdout
    sampled = run_cli("mutants", DEMO_LAB, "--list", "--sample", "2", "--seed", "5", cwd=course)
    assert "2 mutant(s)" in sampled.stdout
    assert "task 1" in sampled.stdout and "task 2" in sampled.stdout  # one of each task first


def test_lab_entry_commands_name_what_is_missing(course: Path) -> None:
    _one_line_error(run_cli("serve", "--impl", "nope"), "--impl must be student or solution")
    _one_line_error(run_cli("serve", cwd=course), "lab02_vllm/src/server.py", "course serve")
    _one_line_error(run_cli("bench", cwd=course), "lab05_benchmark/bench.py is not here yet")
