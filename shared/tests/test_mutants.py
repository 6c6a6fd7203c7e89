"""``course mutants``: a caught mistake, a surviving one, and mutants files that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.mutants import MutantError, load_mutants, run_mutants

from .helpers import DEMO_LAB, FAST_CHILD_ADDOPTS, make_demo_course, run_cli, write_files

MUTANTS = '''\
MUTANTS = [
    {"task": 1, "file": "calc.py", "find": "total = a + b", "replace": "total = a - b",
     "why": "subtracts instead of adding"},
    {"task": 2, "file": "calc.py", "find": "product = x * factor", "replace": "product = factor * x",
     "why": "the same product in the other order: no test can tell"},
]
'''


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTEST_ADDOPTS", FAST_CHILD_ADDOPTS)
    return make_demo_course(tmp_path / "course", {f"{DEMO_LAB}/instructor/mutants.py": MUTANTS})


def test_a_caught_and_a_surviving_mutant(course: Path) -> None:
    lab = course / DEMO_LAB
    mutants = load_mutants(lab)
    assert [(m.name, m.task) for m in mutants] == [("mutants.py#1", 1), ("mutants.py#2", 2)]
    before = (lab / "solution" / "calc.py").read_text()
    results = run_mutants(lab, mutants, root=course, timeout=120)
    assert [r.outcome for r in results] == ["caught", "survived"]
    assert results[0].detail.startswith(f"{DEMO_LAB}/tests/")  # the first test that failed
    assert (lab / "solution" / "calc.py").read_text() == before  # the course itself is never edited


def test_a_solution_that_fails_its_own_tests_is_refused_first(course: Path) -> None:
    lab = course / DEMO_LAB
    broken = (lab / "solution" / "calc.py").read_text().replace("total = a + b", "total = a + b + 1")
    (lab / "solution" / "calc.py").write_text(broken)
    write_files(course, {f"{DEMO_LAB}/instructor/mutants.py": MUTANTS.replace("total = a + b", "total = a + b + 1")
                         .replace("total = a - b", "total = a - b + 1")})
    with pytest.raises(MutantError, match="task 1: the unmutated solution does not pass its tests"):
        run_mutants(lab, load_mutants(lab), root=course, timeout=120)


@pytest.mark.parametrize(("entry", "message"), [
    ('{"task": 1, "file": "calc.py", "find": "nowhere", "replace": "x", "why": "w"}', "occurs 0 times"),
    ('{"task": 1, "file": "calc.py", "find": "return", "replace": "x", "why": "w"}', r"occurs [2-9] times"),
    ('{"task": 1, "file": "nope.py", "find": "a", "replace": "b", "why": "w"}', "solution/nope.py does not exist"),
    ('{"task": "1", "file": "calc.py", "find": "a + b", "replace": "b", "why": "w"}', "field 'task' must be a int"),
    ('{"task": 1, "file": "calc.py", "find": "a + b", "replace": "a + b", "why": "w"}', "nothing changes"),
    ('{"task": 1, "file": "calc.py", "find": "a + b", "replace": "b", "why": "w", "extra": 1}', "unknown field"),
])
def test_unusable_mutants_are_named(tmp_path: Path, entry: str, message: str) -> None:
    course = make_demo_course(tmp_path / "course", {f"{DEMO_LAB}/instructor/mutants.py": f"MUTANTS = [{entry}]\n"})
    with pytest.raises(MutantError, match=message) as error:
        load_mutants(course / DEMO_LAB)
    assert f"{DEMO_LAB}/instructor/mutants.py entry 1" in str(error.value)


def test_a_mutants_file_is_read_not_run(tmp_path: Path) -> None:
    course = make_demo_course(tmp_path / "course", {
        f"{DEMO_LAB}/instructor/mutants.py": "import os\nos.remove('x')\nMUTANTS = [m for m in []]\n"})
    with pytest.raises(MutantError, match="must be a literal list"):
        load_mutants(course / DEMO_LAB)


# --------------------------------------------------------------------------------------------
# Fresh state per mutant; blind rounds with --file; survivors with their checks; text as written

STATE_TEST = '''\
import os
from pathlib import Path

import pytest


@pytest.mark.task(2)
@pytest.mark.points(1)
def test_nothing_left_by_an_earlier_run():
    """Fails when an earlier run in the same course copy left its state (a file, an example database)."""
    course = Path(__file__).resolve().parents[2]
    left = course / "left-by-an-earlier-run"
    assert not left.exists(), "an earlier mutant's run left its state here"
    left.write_text("x")
    database = Path(os.environ["HYPOTHESIS_STORAGE_DIRECTORY"])
    assert database.parent == course and not database.exists()
'''

# Two mistakes no test can tell from the reference: both must survive, each in a fresh copy.
NEUTRAL = '''\
MUTANTS = [
    {"task": 2, "file": "calc.py", "find": "product = x * factor", "replace": "product = factor * x",
     "why": "the same product [x*f] in the other order"},
    {"task": 2, "file": "calc.py", "find": "    return product", "replace": "    return product + 0",
     "why": "adds [0]", "check": ">>> scale(3, 4)  # 12, as the reference: equivalent"},
]
'''

BLIND = '''\
MUTANTS = [
    {"task": 1, "file": "calc.py", "find": "total = a + b", "replace": "total = a - b",
     "why": "subtracts [a-b] instead of adding", "check": ">>> add(2, 3)\\n-1"},
    {"task": 1, "file": "calc.py", "find": "total = a + b", "replace": "total = a + b if a < 10**15 else a",
     "why": "drops b for [large] a", "check": "add(10**16, 1) returns 10**16 (no test adds so large a number)"},
]
'''


@pytest.fixture
def state_course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTEST_ADDOPTS", FAST_CHILD_ADDOPTS)
    monkeypatch.delenv("COURSE_IMPL", raising=False)
    return make_demo_course(tmp_path / "course", {
        f"{DEMO_LAB}/tests/test_state.py": STATE_TEST,
        f"{DEMO_LAB}/instructor/mutants.py": NEUTRAL,
        f"{DEMO_LAB}/instructor/blind/round1.py": BLIND,
    })


def test_each_mutant_runs_in_a_fresh_copy_with_a_fresh_example_database(state_course: Path) -> None:
    lab = state_course / DEMO_LAB
    results = run_mutants(lab, load_mutants(lab), root=state_course, timeout=120)  # the baseline runs too
    assert [r.outcome for r in results] == ["survived", "survived"], [r.detail for r in results]
    assert not (state_course / "left-by-an-earlier-run").exists()  # the course itself is untouched


def test_blind_rounds_are_read_only_with_file(state_course: Path) -> None:
    lab = state_course / DEMO_LAB
    assert [m.name for m in load_mutants(lab)] == ["mutants.py#1", "mutants.py#2"]  # CI's glob: no blind round
    blind = load_mutants(lab, [lab / "instructor" / "blind" / "round1.py"])
    assert [m.name for m in blind] == ["blind/round1.py#1", "blind/round1.py#2"]
    assert blind[0].check == ">>> add(2, 3)\n-1"
    with pytest.raises(MutantError, match="under lab01_demo/instructor/"):
        load_mutants(lab, [lab / "solution" / "calc.py"])


def test_a_check_snippet_must_be_python(tmp_path: Path) -> None:
    course = make_demo_course(tmp_path / "course", {f"{DEMO_LAB}/instructor/mutants.py": (
        'MUTANTS = [{"task": 1, "file": "calc.py", "find": "a + b", "replace": "a - b", "why": "w",'
        ' "check": ">>> add(2, 3"}]\n')})
    with pytest.raises(MutantError, match="entry 1: the 'check' snippet is not valid Python"):
        load_mutants(course / DEMO_LAB)


def test_the_command_prints_mistakes_as_written_and_lists_survivors_with_their_checks(state_course: Path) -> None:
    blind = state_course / DEMO_LAB / "instructor" / "blind" / "round1.py"
    run = run_cli("mutants", DEMO_LAB, "--file", str(blind), "--no-baseline", cwd=state_course)
    assert run.returncode == 1, run.stdout + run.stderr  # 1 of 2 caught: under 90 %
    assert "subtracts [a-b] instead of adding" in run.stdout  # rich markup left the brackets alone
    assert "drops b for [large] a" in run.stdout
    assert "1 of 2 mutants caught" in run.stdout
    assert "SURVIVED blind/round1.py#2 (task 1, calc.py): drops b for [large] a" in run.stdout
    assert "check: add(10**16, 1) returns 10**16 (no test adds so large a number)" in run.stdout

    # Read back without running anything (a run takes seconds; this must not).
    listed = run_cli("mutants", DEMO_LAB, "--file", str(blind), "--list-survivors", cwd=state_course)
    assert listed.returncode == 0, listed.stderr
    assert "SURVIVED blind/round1.py#2" in listed.stdout and "blind/round1.py#1" not in listed.stdout
    assert "check: add(10**16, 1) returns 10**16" in listed.stdout
    assert "1 survivor(s) among 2 recorded outcome(s)" in listed.stdout
    # A mutant edited since its run has no recorded outcome any more.
    blind.write_text(BLIND.replace("a < 10**15", "a < 10**14"))
    listed = run_cli("mutants", DEMO_LAB, "--file", str(blind), "--list-survivors", cwd=state_course)
    assert "0 survivor(s) among 1 recorded outcome(s)" in listed.stdout
    assert "1 mutant(s) have no recorded outcome" in listed.stdout


def test_a_relative_model_is_read_from_the_callers_folder(state_course: Path, tmp_path: Path) -> None:
    run = run_cli("mutants", DEMO_LAB, "--no-baseline", "--", "--model", "no-such-model", cwd=state_course)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert f"--model no-such-model: no such folder ({state_course / 'no-such-model'})" in run.stderr
