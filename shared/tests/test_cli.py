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


# --------------------------------------------------------------------------------------------
# The CLI's promise on this course: one line, exit code 2


def test_model_and_task_mistakes_end_in_one_line(tmp_path: Path) -> None:
    # A relative --model is read from the caller's folder, and the message names --model.
    line = _one_line_error(run_cli("test", "lab01", "--model", "my-model", cwd=tmp_path), "--model my-model")
    assert str(tmp_path / "my-model") in line and "COURSE_MODEL" not in line
    _one_line_error(run_cli("test", "lab01", "--model", "/nonexistent"), "--model /nonexistent: no such folder")
    (tmp_path / "not-a-model").mkdir()
    _one_line_error(run_cli("test", "lab01", "--model", str(tmp_path / "not-a-model")), "no config.json")
    _one_line_error(run_cli("test", "lab01", "--task", "99"), "--task 99: lab01_huggingface has no such task")
    grade_json = tmp_path / "grade.json"
    _one_line_error(run_cli("grade", "--lab", "lab01", "--task", "99", "--json", str(grade_json)), "--task 99")
    assert "--task 99" in json.loads(grade_json.read_text())["problem"]


def test_hint_prints_level_by_level_and_names_what_is_missing() -> None:
    first = run_cli("hint", "lab01", "--task", "3")
    assert first.returncode == 0, first.stderr
    assert "lab01 task 3, hint level 1 of 3:" in first.stdout and "level 2 of 3" not in first.stdout
    assert "course hint lab01 --task 3 --level 2" in first.stdout
    more = run_cli("hint", "lab01", "--task", "3", "--level", "2")
    assert "hint level 1 of 3" in more.stdout and "hint level 2 of 3" in more.stdout
    assert "(decode)" in more.stdout and "(stop_ids)" in more.stdout
    _one_line_error(run_cli("hint", "lab01", "--task", "3", "--level", "9"), "--level 9", "levels 1 to 3")
    _one_line_error(run_cli("hint", "lab01", "--task", "99"), "no hints for task 99")


# --------------------------------------------------------------------------------------------
# Which checkout: the one the command is typed in


def _cli_installed_in(installed: Path, cwd: Path, *args: str, **env_extra: str):
    """``course ARGS`` typed in ``cwd`` with ``course`` installed from the checkout ``installed``."""
    import subprocess
    import sys

    from .helpers import child_env

    env = {**child_env(installed), **env_extra}
    # -P: the folder typed in is not put first on sys.path, as with the installed `course` script.
    return subprocess.run([sys.executable, "-P", "-m", "shared.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_a_command_typed_in_another_checkout_tests_that_checkout(demo_course: Path, tmp_path: Path) -> None:
    from .helpers import make_demo_course, write_files

    other = make_demo_course(tmp_path / "other")
    write_files(other, {f"{DEMO_LAB}/tests/test_more.py": (
        "import pytest\n\n\n@pytest.mark.task(2)\n@pytest.mark.points(1)\ndef test_only_here():\n    pass\n")})
    run = _cli_installed_in(demo_course, other / DEMO_LAB, "test", "demo", "--task", "2", "--impl", "solution",
                            "--", "-q")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"this folder's checkout is {other} (course was installed from {demo_course})" in run.stdout
    assert "3 passed" in run.stdout  # the other checkout's tests (test_only_here included)

    refused = _cli_installed_in(demo_course, other, "test", "demo", COURSE_INSTALLED_CHECKOUT="elsewhere")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert str(other) in refused.stderr and str(demo_course) in refused.stderr and "pip install -e" in refused.stderr


def test_the_student_edition_tests_its_own_code_and_carries_its_hints(demo_course: Path, tmp_path: Path) -> None:
    from .helpers import make_demo_course

    course = make_demo_course(tmp_path / "course")
    solution = course / DEMO_LAB / "solution" / "calc.py"
    solution.write_text(solution.read_text().replace(
        "    # BEGIN SOLUTION task 2: multiply x by factor.\n",
        "    # BEGIN SOLUTION task 2: multiply x by factor.\n    # HINT task 2 level 1: a product.\n"))
    edition = tmp_path / "edition"
    assert run_cli("release", "--out", str(edition), cwd=course).returncode == 0
    # Typed in the edition, `course` installed from the instructor's course: the edition's skeleton runs.
    run = _cli_installed_in(course, edition, "test", "demo", "--task", "2", "--", "-q")
    assert run.returncode == 1 and "2 failed" in run.stdout, run.stdout + run.stderr
    assert "lab01 task 2: scale is not written yet" in run.stdout
    hint = _cli_installed_in(course, edition, "hint", "demo", "--task", "2")
    assert hint.returncode == 0 and "(scale) a product." in hint.stdout, hint.stdout + hint.stderr
    check = _cli_installed_in(course, edition, "check")
    assert f"Course checkout tested: {edition} (this folder's; course was installed from {course})" \
        in " ".join(check.stdout.split()), check.stdout
