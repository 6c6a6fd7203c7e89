"""The one resolver through which tests import the code under test.

Tests never import ``lab01_huggingface.src.generate`` directly. They ask::

    generate = lab_module("lab01_huggingface", "generate")

and get the student's ``src`` module (the default) or the reference ``solution`` module
(``pytest --impl solution`` or ``COURSE_IMPL=solution``). The import happens lazily, on first
use, so a syntax error in a student's file fails the tests that use it, each with a readable
message, instead of breaking test collection for the whole lab.
"""

from __future__ import annotations

import importlib
import os
import traceback
from types import ModuleType
from typing import Any

from .paths import ROOT

IMPLS = {"student": "src", "solution": "solution"}
IMPL_ENV = "COURSE_IMPL"


class StudentCodeError(ImportError):
    """The module under test could not be imported."""


def current_impl() -> str:
    """``student`` or ``solution``, from ``$COURSE_IMPL`` (set by ``pytest --impl``)."""
    impl = os.environ.get(IMPL_ENV, "student")
    if impl not in IMPLS:
        raise ValueError(f"${IMPL_ENV} must be one of {', '.join(IMPLS)}, got {impl!r}")
    return impl


def import_lab_module(lab: str, module: str, impl: str | None = None) -> ModuleType:
    """Import ``<lab>/<src|solution>/<module>.py`` now.

    Raises:
        StudentCodeError: when the file is missing or fails to import; the message names the file,
            the error and its line.
    """
    impl = impl or current_impl()
    folder = IMPLS[impl]
    path = ROOT / lab / folder / f"{module}.py"
    if not path.exists():
        if impl == "solution" and not (ROOT / lab / "solution").exists():
            raise StudentCodeError(f"{lab}/solution/ is not here: this is the student edition, "
                                   "so only --impl student can be tested")
        raise StudentCodeError(f"{path.relative_to(ROOT)} is missing")
    try:
        return importlib.import_module(f"{lab}.{folder}.{module}")
    except Exception as error:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith(str(ROOT / lab))]
        where = f" at {os.path.relpath(frames[-1].filename, ROOT)}:{frames[-1].lineno}" if frames else ""
        if isinstance(error, SyntaxError) and error.filename:
            where = f" at {os.path.relpath(error.filename, ROOT)}:{error.lineno}"
        raise StudentCodeError(
            f"could not import {path.relative_to(ROOT)}{where}: {type(error).__name__}: {error}"
        ) from error


class LazyModule(ModuleType):
    """A stand-in that imports the real module on first attribute access."""

    def __init__(self, lab: str, module: str) -> None:
        super().__init__(f"{lab}.<impl>.{module}")
        self._lab, self._module, self._real = lab, module, None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._real is None:
            self._real = import_lab_module(self._lab, self._module)
        return getattr(self._real, name)


def lab_module(lab: str, module: str) -> Any:
    """The module under test, imported on first use (see the module docstring)."""
    return LazyModule(lab, module)
