"""Small synthetic courses for the course's own tests.

A synthetic course is a folder holding a copy of this repository's ``conftest.py``,
``pyproject.toml`` and ``shared`` package (without ``shared/tests``), plus tiny labs written
here. Its ``shared.paths.ROOT`` is its own folder, so pytest runs in it (``python -m pytest``
with ``cwd`` and ``PYTHONPATH`` set to it) exercise the real plugin, resolver and grader on labs
small enough to run in a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

MAIN = Path(__file__).resolve().parents[2]  # the real course (== shared.paths.ROOT)

DEMO_LAB = "lab01_demo"

DEMO_SOLUTION = '''\
"""A tiny lab module for the course's own tests."""

from __future__ import annotations

import os


def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: the first number.
        b: the second number.

    Returns:
        their sum.
    """
    # BEGIN SOLUTION task 1: return the sum of a and b.
    total = a + b
    return total
    # END SOLUTION


def scale(x: int, factor: int) -> int:
    """``x`` times ``factor`` (task 2)."""
    # BEGIN SOLUTION task 2: multiply x by factor.
    product = x * factor
    return product
    # END SOLUTION


def sum_list(values: list[int]) -> int:
    """Given scaffolding: folds ``values`` with :func:`add` (so it needs task 1)."""
    total = 0
    for value in values:
        total = add(total, value)
    return total


def where() -> str:
    """Given scaffolding: the folder this file is in."""
    return os.path.dirname(os.path.abspath(__file__))
'''

DEMO_TESTS = '''\
from pathlib import Path

import pytest

import shared
from shared.impl import lab_module

calc = lab_module("lab01_demo", "calc")


@pytest.mark.task(1)
@pytest.mark.points(2)
def test_add():
    """add() adds."""
    assert calc.add(2, 3) == 5


@pytest.mark.task(1)
@pytest.mark.points(1)
def test_add_negative():
    assert calc.add(-2, -3) == -5


@pytest.mark.task(2)
@pytest.mark.points(2)
def test_scale():
    """scale() multiplies."""
    assert calc.scale(3, 4) == 12


@pytest.mark.task(2)
@pytest.mark.points(1)
def test_sum_then_scale():
    assert calc.scale(calc.sum_list([1, 2, 3]), 2) == 12


@pytest.mark.task(1)
@pytest.mark.scaffold
def test_runs_in_this_course():
    """The child imports this course's shared package and lab code, nothing from elsewhere."""
    course = Path(__file__).resolve().parents[2]
    assert Path(shared.__file__).resolve().parent.parent == course
    assert Path(shared.paths.ROOT) == course
    assert Path(calc.where()).resolve().parent.parent == course
'''

DEMO_HIDDEN_TESTS = '''\
import pytest

from shared.impl import lab_module

calc = lab_module("lab01_demo", "calc")


@pytest.mark.task(1)
@pytest.mark.points(1)
def test_add_large():
    assert calc.add(10**12, 1) == 10**12 + 1
'''


def _ignore_own_tests(folder: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
    if Path(folder).resolve() == MAIN / "shared":
        ignored.add("tests")
    return ignored


def write_files(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def copy_course_base(root: Path) -> Path:
    """``conftest.py``, ``pyproject.toml`` and ``shared/`` (less its tests) copied into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(MAIN / "conftest.py", root / "conftest.py")
    shutil.copy2(MAIN / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(MAIN / "shared", root / "shared", ignore=_ignore_own_tests)
    return root


def make_demo_course(root: Path, extra_files: dict[str, str] | None = None) -> Path:
    """A course with one lab, ``lab01_demo``: solution, generated skeleton, tests, hidden test."""
    from shared.stubs import write_skeletons

    copy_course_base(root)
    write_files(root, {
        f"{DEMO_LAB}/__init__.py": "",
        f"{DEMO_LAB}/README.md": ("# Lab 1: demo\n\n## Task 1 — Adding (4 points)\n\n"
                                  "## Task 2 — Scaling (3 points)\n"),
        f"{DEMO_LAB}/solution/__init__.py": "",
        f"{DEMO_LAB}/solution/calc.py": DEMO_SOLUTION,
        f"{DEMO_LAB}/tests/__init__.py": "",
        f"{DEMO_LAB}/tests/test_calc.py": DEMO_TESTS,
        f"{DEMO_LAB}/tests/hidden/__init__.py": "",
        f"{DEMO_LAB}/tests/hidden/test_hidden_calc.py": DEMO_HIDDEN_TESTS,
        **(extra_files or {}),
    })
    write_skeletons(root)
    return root


def make_submission(folder: Path, calc_source: str, extra_files: dict[str, str] | None = None) -> Path:
    """A student's repository holding ``lab01_demo/src/calc.py`` = ``calc_source``."""
    write_files(folder, {f"{DEMO_LAB}/src/__init__.py": "",
                         f"{DEMO_LAB}/src/calc.py": textwrap.dedent(calc_source),
                         **(extra_files or {})})
    return folder


#: Third-party pytest plugins that the synthetic labs do not use, left out of child runs: loading
#: them (hypothesis above all) triples a child's start-up time.
FAST_CHILD_ADDOPTS = "-p no:hypothesispytest -p no:anyio -p no:xdist -p no:xdist.looponfail"


def child_env(root: Path) -> dict[str, str]:
    """The environment of a child process working in the synthetic course ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTEST_ADDOPTS"] = FAST_CHILD_ADDOPTS
    env.pop("COURSE_IMPL", None)
    return env


def run_pytest(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` in the synthetic course ``root``."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=root, env=child_env(root), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def run_cli(*args: str, cwd: Path = MAIN, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m shared.cli ARGS`` (the ``course`` command) in ``cwd``."""
    env = child_env(cwd)
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
