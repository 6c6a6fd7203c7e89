"""Which tasks a lab's test files hold, read from their text without importing them.

``course test LAB --task K`` (and ``pytest --task K``) collects only the files that can hold a test
of task K: importing a lab's other test files (their helpers, transformers, vLLM's client) took
most of a one-task run. A file's tasks are the integer arguments of every ``pytest.mark.task(N)``
in it (``pytestmark``, decorators, ``pytest.param(..., marks=...)``). A file whose tasks cannot be
read that way (no such marker, or ``task(number)`` with a variable) is collected anyway: the
``--task`` filter on the collected tests then decides, as before.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path


def _is_task_marker(node: ast.AST) -> bool:
    """``pytest.mark.task`` or ``mark.task`` (the function of a ``task(N)`` call)."""
    return (isinstance(node, ast.Attribute) and node.attr == "task"
            and isinstance(node.value, ast.Attribute) and node.value.attr == "mark")


@lru_cache(maxsize=512)
def _file_tasks(path: str, mtime_ns: int) -> frozenset[int] | None:
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None  # pytest reports it when it collects the file
    tasks: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_task_marker(node.func):
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Constant) \
                    or not isinstance(node.args[0].value, int):
                return None
            tasks.add(node.args[0].value)
    return frozenset(tasks) or None


def file_tasks(path: Path) -> frozenset[int] | None:
    """The tasks whose tests ``path`` holds, or None when the file's text does not say."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _file_tasks(str(path), mtime)


def lab_tasks(lab_dir: Path) -> set[int] | None:
    """Every task that the lab's test files (hidden ones included) hold tests for, or None when
    some file's tasks cannot be read from its text."""
    tasks: set[int] = set()
    for path in sorted((lab_dir / "tests").rglob("test_*.py")):
        found = file_tasks(path)
        if found is None:
            return None
        tasks |= found
    return tasks
