"""``course mutants``: a caught mistake, a surviving one, and mutants files that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.mutants import MutantError, load_mutants, run_mutants

from .helpers import DEMO_LAB, FAST_CHILD_ADDOPTS, make_demo_course, write_files

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
