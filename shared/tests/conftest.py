"""Fixtures for the course's own tests (see ``helpers.py`` for the synthetic courses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import FAST_CHILD_ADDOPTS, make_demo_course


@pytest.fixture(scope="session")
def demo_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic course with one small lab, ``lab01_demo``. Tests must not change it."""
    return make_demo_course(tmp_path_factory.mktemp("demo") / "course")


@pytest.fixture
def fast_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """Child pytest runs started by the grader skip third-party plugins the demo lab never uses."""
    monkeypatch.setenv("PYTEST_ADDOPTS", FAST_CHILD_ADDOPTS)
    monkeypatch.delenv("COURSE_IMPL", raising=False)
