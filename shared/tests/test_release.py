"""The student edition: no answers in it, and a check that would catch one."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.paths import ROOT, lab_dirs
from shared.release import ReleaseError, course_files, find_leaks, left_out, solution_lines, write_release
from shared.stubs import hints_json, write_skeletons

from .helpers import DEMO_LAB, DEMO_SOLUTION, DEMO_TESTS, write_files

LEAKED_LINE = "product = x * factor"  # a line of DEMO_SOLUTION's task-2 block


def _course(root: Path) -> Path:
    """A synthetic course (not a git repository: course_files walks it)."""
    write_files(root, {
        "README.md": "# The course\n",
        "pyproject.toml": "[project]\nname = 'demo'\n",
        ".ci/run": "#!/bin/sh\necho ci\n",
        "shared/__init__.py": "",
        "shared/tests/test_own.py": "def test_own():\n    assert True\n",
        "docs/01_intro.md": "# Intro\n",
        f"{DEMO_LAB}/__init__.py": "",
        f"{DEMO_LAB}/README.md": "# Lab 1\n",
        f"{DEMO_LAB}/solution/__init__.py": "",
        f"{DEMO_LAB}/solution/calc.py": DEMO_SOLUTION,
        f"{DEMO_LAB}/tests/__init__.py": "",
        f"{DEMO_LAB}/tests/test_calc.py": DEMO_TESTS,
        f"{DEMO_LAB}/tests/hidden/__init__.py": "",
        f"{DEMO_LAB}/tests/hidden/test_secret.py": "SECRET = 1\n",
        f"{DEMO_LAB}/__pycache__/junk.pyc": "cache",
    })
    write_skeletons(root)
    return root


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_the_demo_solution_line_is_long_enough_to_count_as_a_leak(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    lines = solution_lines(root)
    assert LEAKED_LINE in lines
    number = DEMO_SOLUTION.splitlines().index(f"    {LEAKED_LINE}") + 1
    assert lines[LEAKED_LINE] == f"{DEMO_LAB}/solution/calc.py:{number}"
    assert "total = a + b" not in lines  # too short to mean anything


def test_release_of_a_synthetic_course(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    assert not (root / ".git").exists()
    assert Path(".ci/run") in course_files(root)
    out = tmp_path / "edition"
    summary = write_release(out, root=root)

    written = _files(out)
    assert summary.out == out.resolve() and summary.files == len(written)
    assert {"README.md", "pyproject.toml", "shared/__init__.py", "docs/01_intro.md",
            f"{DEMO_LAB}/README.md", f"{DEMO_LAB}/src/calc.py", f"{DEMO_LAB}/src/__init__.py",
            f"{DEMO_LAB}/tests/test_calc.py"} <= written
    for banned in (f"{DEMO_LAB}/solution", f"{DEMO_LAB}/tests/hidden", ".ci", "shared/tests", "__pycache__"):
        assert not any(f == banned or f.startswith(banned + "/") or f"/{banned}/" in f for f in written), banned
    assert summary.left_out == [".ci", f"{DEMO_LAB}/solution", f"{DEMO_LAB}/tests/hidden", "shared/tests"]
    assert (out / DEMO_LAB / "src" / "calc.py").read_bytes() == (root / DEMO_LAB / "src" / "calc.py").read_bytes()
    assert find_leaks(out, root) == []


def test_a_planted_leak_is_found(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    out = tmp_path / "edition"
    write_release(out, root=root)
    readme = out / DEMO_LAB / "README.md"
    readme.write_text(readme.read_text() + f"\nHint: just write `{LEAKED_LINE}`.\n")
    leaks = find_leaks(out, root)
    assert len(leaks) == 1
    assert leaks[0].startswith(f"{DEMO_LAB}/README.md holds solution line {DEMO_LAB}/solution/calc.py:")
    assert LEAKED_LINE in leaks[0]


def test_release_refuses_to_write_an_edition_that_leaks(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    (root / "docs" / "01_intro.md").write_text(f"# Intro\n\n    {LEAKED_LINE}\n")
    with pytest.raises(ReleaseError, match="would leak answers") as error:
        write_release(tmp_path / "edition", root=root)
    assert "docs/01_intro.md" in str(error.value)


def test_release_refuses_a_non_empty_out_unless_forced(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    out = tmp_path / "edition"
    write_files(out, {"keep.txt": "mine"})
    with pytest.raises(ReleaseError, match="not empty"):
        write_release(out, root=root)
    assert (out / "keep.txt").read_text() == "mine"
    write_release(out, root=root, force=True)
    assert not (out / "keep.txt").exists()
    assert (out / DEMO_LAB / "src" / "calc.py").exists()


def test_release_refuses_an_out_inside_the_course_or_holding_it(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    before = _files(root)
    for inside in (root, root / "release", root / DEMO_LAB / "edition"):
        with pytest.raises(ReleaseError, match="inside the course"):
            write_release(inside, root=root, force=True)
    with pytest.raises(ReleaseError, match="holds the course"):
        write_release(tmp_path, root=root, force=True)  # --force would have deleted the course
    assert _files(root) == before


def test_release_of_the_real_course(tmp_path: Path) -> None:
    out = tmp_path / "edition"
    summary = write_release(out)
    written = _files(out)
    hints = {f"{lab.name}/hints.json" for lab in lab_dirs() if (lab / "solution").is_dir() and hints_json(lab)}
    assert "lab01_huggingface/hints.json" in hints  # generated from solution/ for `course hint`
    assert written == {str(p) for p in course_files() if not left_out(p)} | hints
    assert {"pyproject.toml", "conftest.py", "shared/cli.py", "shared/pytest_plugin.py"} <= written
    for path in written:
        parts = Path(path).parts
        assert parts[0] not in {".ci", ".git", ".venv"}, path
        assert parts[:2] != ("shared", "tests"), path
        if parts[0].startswith("lab") and len(parts) > 2:
            assert parts[1] != "solution" and parts[1:3] != ("tests", "hidden"), path
    for lab in lab_dirs():
        if (lab / "src").is_dir():
            for source in (lab / "src").rglob("*.py"):
                if "__pycache__" not in source.parts:
                    assert (out / source.relative_to(ROOT)).read_bytes() == source.read_bytes()
    assert "shared/tests" in summary.left_out
    # write_release refuses an edition where find_leaks finds anything: reaching here means none.

    lines = solution_lines()
    if not lines:
        pytest.skip("no lab has solution blocks yet")
    probe = tmp_path / "probe"
    probe.mkdir()
    copied = sorted(lines, key=len)[::max(1, len(lines) // 50)]  # short and long lines alike
    for number, line in enumerate(copied):
        (probe / f"README{number}.md").write_text(f"copied: {line}\n")
    found = find_leaks(probe)
    for number, line in enumerate(copied):
        assert [leak for leak in found if leak.startswith(f"README{number}.md holds solution line")], line


# --------------------------------------------------------------------------------------------
# Answers restated in given code (shared.leaks)

LOOP_SOLUTION = '''\
"""A block long enough to be worth restating."""

import math


def running_stats(values: list[float]) -> tuple[float, float]:
    """Mean and standard deviation, in one pass (task 2)."""
    # BEGIN SOLUTION task 2: Welford's update.
    if not values:
        raise ValueError("values is empty")
    count, mean, m2 = 0, 0.0, 0.0
    for value in values:
        count += 1
        delta = value - mean
        mean += delta / count
        m2 += delta * (value - mean)
    variance = m2 / count
    deviation = math.sqrt(variance)
    return mean, deviation
    # END SOLUTION
'''

# The same statements with every local name changed, in a "given" helper of another file.
RESTATED = '''\
import math


def describe(numbers):
    """Given scaffolding that should call running_stats, but holds its answer instead."""
    if not numbers:
        raise ValueError("no numbers")
    n, average, spread = 0, 0.0, 0.0
    for number in numbers:
        n += 1
        step = number - average
        average += step / n
        spread += step * (number - average)
    var = spread / n
    return average, math.sqrt(var)
'''


def test_a_given_function_restating_a_block_with_other_names_is_found(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    write_files(root, {f"{DEMO_LAB}/solution/stats.py": LOOP_SOLUTION, f"{DEMO_LAB}/tests/helpers.py": RESTATED})
    write_skeletons(root)
    with pytest.raises(ReleaseError, match="would leak answers") as error:
        write_release(tmp_path / "edition", root=root)
    message = str(error.value)
    assert f"{DEMO_LAB}/tests/helpers.py:4 (describe) repeats" in message
    assert "(task 2, running_stats)" in message and "must call the student's function" in message


def test_a_stated_overlap_is_allowed_and_named(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    marked = RESTATED.replace("def describe", "# leak-check: allowed, a worked example the README\n"
                                              "# walks through on purpose\ndef describe")
    write_files(root, {f"{DEMO_LAB}/solution/stats.py": LOOP_SOLUTION, f"{DEMO_LAB}/tests/helpers.py": marked})
    write_skeletons(root)
    summary = write_release(tmp_path / "edition", root=root)
    assert len(summary.allowed_overlaps) == 1
    assert "describe" in summary.allowed_overlaps[0]
    assert summary.allowed_overlaps[0].endswith("allowed: a worked example the README walks through on purpose")


def test_unrelated_code_of_the_same_shape_is_not_a_leak(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    unrelated = '''\
def tally(words):
    counts = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    top = ranked[:10]
    total = sum(count for _, count in top)
    share = total / max(1, len(words))
    return top, share
'''
    write_files(root, {f"{DEMO_LAB}/solution/stats.py": LOOP_SOLUTION, f"{DEMO_LAB}/tests/helpers.py": unrelated})
    write_skeletons(root)
    assert write_release(tmp_path / "edition", root=root).allowed_overlaps == []


def test_the_instructor_folder_is_left_out(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    write_files(root, {f"{DEMO_LAB}/instructor/mutants.py": "MUTANTS = []\n"})
    summary = write_release(tmp_path / "edition", root=root)
    assert f"{DEMO_LAB}/instructor" in summary.left_out
    assert not (tmp_path / "edition" / DEMO_LAB / "instructor").exists()
    assert left_out(Path(DEMO_LAB) / "instructor" / "NOTES.md")


def test_a_paragraph_marked_allowed_is_no_leak(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    oracle = ("def reference(x, factor):\n    # leak-check: allowed, the test's oracle computes the same product\n"
              f"    {LEAKED_LINE}\n    return product\n\n\ndef hint():\n    {LEAKED_LINE}\n")
    write_files(root, {f"{DEMO_LAB}/tests/oracle.py": oracle})
    out = tmp_path / "edition"
    with pytest.raises(ReleaseError) as error:  # the unmarked paragraph still counts
        write_release(out, root=root)
    assert str(error.value).count("tests/oracle.py holds solution line") == 1


def test_blind_rounds_and_the_hints_source_stay_out_and_the_hints_come_in(tmp_path: Path) -> None:
    import json

    root = _course(tmp_path / "course")
    hinted = DEMO_SOLUTION.replace("    # BEGIN SOLUTION task 2: multiply x by factor.\n",
                                   "    # BEGIN SOLUTION task 2: multiply x by factor.\n"
                                   "    # HINT task 2 level 1: scale is a product; see the docstring.\n")
    write_files(root, {f"{DEMO_LAB}/instructor/blind/round1.py": "MUTANTS = []\n",
                       f"{DEMO_LAB}/solution/calc.py": hinted})
    write_skeletons(root)
    out = tmp_path / "edition"
    write_release(out, root=root)
    assert left_out(Path(DEMO_LAB) / "instructor" / "blind" / "round1.py")
    assert not (out / DEMO_LAB / "instructor").exists()
    assert "HINT" not in (out / DEMO_LAB / "src" / "calc.py").read_text()
    hints = json.loads((out / DEMO_LAB / "hints.json").read_text())
    assert hints["tasks"] == {"2": {"1": [{"function": "scale", "text": "scale is a product; see the docstring."}]}}


def test_a_hint_that_gives_a_solution_line_away_is_a_leak(tmp_path: Path) -> None:
    root = _course(tmp_path / "course")
    leaking = f"    return product\n    # HINT task 2 level 1: write {LEAKED_LINE} and return it.\n"
    write_files(root, {f"{DEMO_LAB}/solution/calc.py": DEMO_SOLUTION.replace("    return product\n", leaking)})
    write_skeletons(root)
    with pytest.raises(ReleaseError, match=f"{DEMO_LAB}/hints.json holds solution line"):
        write_release(tmp_path / "edition", root=root)
