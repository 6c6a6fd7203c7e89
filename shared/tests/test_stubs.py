"""The stub tool: solution files -> student skeletons, and the drift check."""

from __future__ import annotations

import ast
import importlib.util
import textwrap
from pathlib import Path

import pytest

from shared.paths import ROOT, lab_dirs
from shared.stubs import (
    MarkerError,
    check_skeletons,
    parse_blocks,
    stub_source,
    write_skeletons,
)

SOLUTION = '''\
"""Sampling helpers (module docstring stays)."""

from __future__ import annotations

import math


def top_k(logits: list[float], k: int) -> list[float]:
    """Keep the k largest logits.

    Args:
        logits: (vocab,) scores.
        k: how many to keep.

    Returns:
        (vocab,) with the others set to -inf.
    """
    # BEGIN SOLUTION task 4: keep the k largest logits; set the rest to -inf.
    threshold = sorted(logits, reverse=True)[k - 1]
    return [x if x >= threshold else -math.inf for x in logits]
    # END SOLUTION


class Engine:
    """Given scaffolding around a step to write."""

    def step(self, tokens: int) -> int:
        """One engine step."""
        prepared = tokens + 0
        # BEGIN SOLUTION task 2
        scheduled_tokens = prepared * 2
        return scheduled_tokens
        # END SOLUTION


def softmax(xs: list[float]) -> list[float]:
    """Given: no marker here, copied as is."""
    top = max(xs)
    exps = [math.exp(x - top) for x in xs]
    return [e / sum(exps) for e in exps]


def temperature(logits: list[float], t: float) -> list[float]:
    # BEGIN SOLUTION task 5 \u2014 divide by t.
    return [x / t for x in logits]
    # END SOLUTION
'''


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _raised(line: str, indent: str) -> str:
    """The message of a ``raise NotImplementedError("...")`` line at ``indent``."""
    assert line.startswith(indent + "raise ")
    node = ast.parse(line.strip()).body[0]
    assert isinstance(node, ast.Raise) and node.exc.func.id == "NotImplementedError"
    return ast.literal_eval(node.exc.args[0])


def _import_file(path: Path):
    spec = importlib.util.spec_from_file_location(f"skeleton_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parse_blocks_finds_tasks_hints_and_functions(tmp_path: Path) -> None:
    path = _write(tmp_path / "sampling.py", SOLUTION)
    blocks = parse_blocks(path)
    assert [(b.task, b.function, b.hint) for b in blocks] == [
        (4, "top_k", "keep the k largest logits; set the rest to -inf."),
        (2, "step", ""),
        (5, "temperature", "divide by t."),
    ]
    lines = SOLUTION.splitlines()
    for block in blocks:
        assert "BEGIN SOLUTION" in lines[block.begin_line - 1]
        assert "END SOLUTION" in lines[block.end_line - 1]
        assert block.body == lines[block.begin_line:block.end_line - 1]
    assert blocks[1].indent == " " * 8


def test_stub_source_replaces_each_block_and_keeps_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path / "lab03_demo" / "solution" / "sampling.py", SOLUTION)
    skeleton = stub_source(path, "lab03_demo")
    lines = skeleton.splitlines()

    # Each block became a TODO with its hint, then a NotImplementedError naming lab, task, function.
    todo = lines.index("    # TODO(lab03 task 4): keep the k largest logits; set the rest to -inf.")
    assert _raised(lines[todo + 1], "    ") == ("lab03 task 4: top_k is not written yet "
                                               "(see lab03_demo/README.md, task 4)")
    todo = lines.index("        # TODO(lab03 task 2):")
    assert _raised(lines[todo + 1], " " * 8).startswith("lab03 task 2: step is not written yet")
    assert "    # TODO(lab03 task 5): divide by t." in lines

    # No solution line and no marker survives.
    for gone in ("threshold = sorted", "-math.inf for x", "scheduled_tokens", "x / t for x",
                 "BEGIN SOLUTION", "END SOLUTION"):
        assert gone not in skeleton
    # Signatures, docstrings (with shapes), imports and unmarked code stay, in order.
    for kept in ('"""Sampling helpers (module docstring stays)."""', "import math",
                 "def top_k(logits: list[float], k: int) -> list[float]:", "        logits: (vocab,) scores.",
                 "class Engine:", "    def step(self, tokens: int) -> int:", "        prepared = tokens + 0",
                 "def softmax(xs: list[float]) -> list[float]:", "    exps = [math.exp(x - top) for x in xs]"):
        assert kept in lines
    assert skeleton.index("def top_k") < skeleton.index("class Engine") < skeleton.index("def softmax")
    # The skeleton says where it comes from, and is valid Python whose module docstring survived.
    assert lines[0].startswith("# Student skeleton for lab03_demo")
    tree = ast.parse(skeleton)
    assert ast.get_docstring(tree) == "Sampling helpers (module docstring stays)."


def test_skeleton_functions_raise_not_implemented_naming_lab_task_and_function(tmp_path: Path) -> None:
    path = _write(tmp_path / "lab03_demo" / "solution" / "sampling.py", SOLUTION)
    module = _import_file(_write(tmp_path / "skeleton.py", stub_source(path, "lab03_demo")))
    with pytest.raises(NotImplementedError, match=r"^lab03 task 4: top_k is not written yet"):
        module.top_k([1.0, 2.0], 1)
    with pytest.raises(NotImplementedError, match=r"^lab03 task 2: step is not written yet"):
        module.Engine().step(3)
    with pytest.raises(NotImplementedError, match=r"^lab03 task 5: temperature is not written yet"):
        module.temperature([1.0], 2.0)
    # Unmarked code still works, and the docstrings are the solution's.
    assert module.softmax([0.0, 0.0]) == [0.5, 0.5]
    solution = _import_file(path)
    assert module.top_k.__doc__ == solution.top_k.__doc__
    assert solution.top_k([1.0, 3.0, 2.0], 2) == [-float("inf"), 3.0, 2.0]


def test_a_file_without_markers_is_copied_unchanged(tmp_path: Path) -> None:
    source = "def given(x: int) -> int:\n    return x * 2\n"
    path = _write(tmp_path / "lab02_demo" / "solution" / "given.py", source)
    assert parse_blocks(path) == []
    assert stub_source(path, "lab02_demo") == source


# (source, line the error must name, words it must contain)
MALFORMED = {
    "begin without end": (
        """
        def f():
            # BEGIN SOLUTION task 1: hint
            return 1
        """, 2, "never closed"),
    "end without begin": (
        """
        def f():
            x = 1
            # END SOLUTION
            return x
        """, 3, "without a BEGIN"),
    "nested": (
        """
        def f():
            # BEGIN SOLUTION task 1
            x = 1
            # BEGIN SOLUTION task 2
            return x
            # END SOLUTION
            # END SOLUTION
        """, 4, "cannot nest"),
    "no task": (
        """
        def f():
            # BEGIN SOLUTION
            return 1
            # END SOLUTION
        """, 2, "must name its task"),
    "outside a function": (
        """
        def f():
            return 1


        # BEGIN SOLUTION task 1: module level
        CONSTANT = 3
        # END SOLUTION
        """, 5, "inside a function"),
    "not python": (
        """
        def f(:
            # BEGIN SOLUTION task 1
            return 1
            # END SOLUTION
        """, 1, "not valid Python"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_markers_name_the_file_and_line(tmp_path: Path, case: str) -> None:
    source, line, words = MALFORMED[case]
    path = _write(tmp_path / "lab01_demo" / "solution" / "broken.py", textwrap.dedent(source).lstrip("\n"))
    with pytest.raises(MarkerError) as error:
        parse_blocks(path)
    assert f"{path}:{line}:" in str(error.value)
    assert words in str(error.value)
    with pytest.raises(MarkerError, match=f"broken.py:{line}:"):
        stub_source(path, "lab01_demo")


def test_a_block_at_the_end_of_a_function_is_inside_it(tmp_path: Path) -> None:
    """``END SOLUTION`` after a function's last statement is past its ``end_lineno``."""
    path = _write(tmp_path / "last.py", "def f() -> int:\n    # BEGIN SOLUTION task 1\n    return 1\n"
                                        "    # END SOLUTION\n\n\nX = 2\n")
    [block] = parse_blocks(path)
    assert (block.function, block.begin_line, block.end_line) == ("f", 2, 4)


# --------------------------------------------------------------------------------------------
# write_skeletons / check_skeletons on a synthetic course


def _course(root: Path) -> Path:
    lab = root / "lab01_demo"
    _write(lab / "solution" / "__init__.py", "")
    _write(lab / "solution" / "sampling.py", SOLUTION)
    _write(lab / "solution" / "data" / "prompts.txt", "a prompt\n")
    (lab / "src").mkdir()
    _write(root / "lab02_nosolution" / "src" / "mine.py", "x = 1\n")  # no solution/: left alone
    return root


def test_check_then_write_then_check(tmp_path: Path) -> None:
    root = _course(tmp_path)
    problems = check_skeletons(root)
    assert sorted(problems) == sorted([
        "lab01_demo/src/__init__.py: missing",
        "lab01_demo/src/sampling.py: missing",
        "lab01_demo/src/data/prompts.txt: missing",
    ])

    changed = write_skeletons(root)
    src = root / "lab01_demo" / "src"
    assert sorted(changed) == sorted([src / "__init__.py", src / "sampling.py", src / "data" / "prompts.txt"])
    assert (src / "sampling.py").read_text() == stub_source(root / "lab01_demo/solution/sampling.py",
                                                            "lab01_demo")
    assert (src / "data" / "prompts.txt").read_text() == "a prompt\n"
    assert check_skeletons(root) == []
    assert write_skeletons(root) == []  # nothing left to change
    assert (root / "lab02_nosolution" / "src" / "mine.py").read_text() == "x = 1\n"


def test_check_reports_drift_and_extra_files_and_write_fixes_them(tmp_path: Path) -> None:
    root = _course(tmp_path)
    write_skeletons(root)
    src = root / "lab01_demo" / "src"
    edited = (src / "sampling.py").read_text().replace("prepared = tokens + 0", "prepared = tokens + 1")
    (src / "sampling.py").write_text(edited)
    _write(src / "extra.py", "y = 2\n")
    (src / "__pycache__").mkdir()
    _write(src / "__pycache__" / "sampling.cpython-311.pyc", "not a real pyc")  # caches are ignored

    problems = check_skeletons(root)
    assert len(problems) == 2, problems
    drift = next(p for p in problems if p.startswith("lab01_demo/src/sampling.py"))
    assert "differs from its solution" in drift and "prepared = tokens + 1" in drift
    assert "lab01_demo/src/extra.py: has no counterpart in solution/" in problems

    changed = write_skeletons(root)
    assert sorted(changed) == sorted([src / "sampling.py", src / "extra.py"])
    assert not (src / "extra.py").exists()
    assert "prepared = tokens + 0" in (src / "sampling.py").read_text()
    assert check_skeletons(root) == []


def test_write_skeletons_refuses_malformed_markers(tmp_path: Path) -> None:
    root = _course(tmp_path)
    bad = _write(root / "lab01_demo" / "solution" / "bad.py", "def f():\n    # BEGIN SOLUTION task 1\n    pass\n")
    with pytest.raises(MarkerError, match=f"{bad}:2:"):
        write_skeletons(root)
    with pytest.raises(MarkerError, match=f"{bad}:2:"):
        check_skeletons(root)


# --------------------------------------------------------------------------------------------
# The real course


def test_the_committed_skeletons_are_in_step_with_their_solutions() -> None:
    assert check_skeletons() == []


def test_no_skeleton_holds_a_solution_marker() -> None:
    offenders = [str(path.relative_to(ROOT)) for lab in lab_dirs() for path in (lab / "src").rglob("*")
                 if path.is_file() and "__pycache__" not in path.parts
                 and "BEGIN SOLUTION" in path.read_text(encoding="utf-8", errors="replace")]
    assert offenders == []


def test_every_real_skeleton_is_valid_python() -> None:
    for lab in lab_dirs():
        for path in (lab / "src").rglob("*.py"):
            ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# --------------------------------------------------------------------------------------------
# Hints: beside the answer in solution/, stripped from the skeleton, read level by level

HINTED = '''\
"""Hinted."""


def double(x: int) -> int:
    """Twice x."""
    # HINT task 1 level 2: beside the block: stripped from the skeleton too.
    # BEGIN SOLUTION task 1: double it.
    # HINT task 1 level 1: what to achieve; reading: the docstring.
    #   A continuation line.
    result = x * 2
    return result
    # END SOLUTION


def halve(x: int) -> int:
    """Half x."""
    # BEGIN SOLUTION task 1: halve it.
    # HINT task 1 level 1: halve's part of level 1.
    return x // 2
    # END SOLUTION
'''


def test_hints_are_read_by_task_and_level_and_stripped_from_the_skeleton(tmp_path: Path) -> None:
    from shared.stubs import hints_json, lab_hints, parse_hints

    lab = tmp_path / "lab07_hints"
    path = _write(lab / "solution" / "calc.py", HINTED)
    assert [(h.task, h.level, h.function, h.text) for h in parse_hints(path)] == [
        (1, 2, "double", "beside the block: stripped from the skeleton too."),
        (1, 1, "double", "what to achieve; reading: the docstring. A continuation line."),
        (1, 1, "halve", "halve's part of level 1."),
    ]
    skeleton = stub_source(path, lab.name)
    assert "HINT" not in skeleton and "continuation" not in skeleton
    assert skeleton.count("raise NotImplementedError") == 2
    hints = lab_hints(lab)
    assert [e["text"] for e in hints[1][1]] == ["what to achieve; reading: the docstring. A continuation line.",
                                                "halve's part of level 1."]
    assert list(hints[1]) == [1, 2]
    assert '"function": "halve"' in hints_json(lab) and "calc.py:" not in hints_json(lab)


@pytest.mark.parametrize(("hint", "message"), [
    ("# HINT task 1: no level", "must read '# HINT task K level N: text'"),
    ("# HINT task 1 level 0: from 1", "must read"),
    ("# HINT task 1 level 4: a gap", r"task 1's hint levels are \[1, 2, 4\]"),
    ("# HINT task 9 level 1: no such block", "hints for task 9, which has no solution block"),
])
def test_malformed_hints_are_refused(tmp_path: Path, hint: str, message: str) -> None:
    from shared.stubs import lab_hints

    lab = tmp_path / "lab07_hints"
    _write(lab / "solution" / "calc.py", HINTED.replace("    return x // 2\n", f"    {hint}\n    return x // 2\n"))
    with pytest.raises(MarkerError, match=message):
        lab_hints(lab)


def test_the_real_hints_parse_and_lab01_has_some() -> None:
    from shared.stubs import lab_hints

    hints = {lab.name: lab_hints(lab) for lab in lab_dirs() if (lab / "solution").is_dir()}
    assert {2, 3} <= set(hints["lab01_huggingface"])
    for task in (2, 3):
        assert list(hints["lab01_huggingface"][task]) == [1, 2, 3]


def test_the_skeleton_package_does_not_call_itself_the_reference() -> None:
    for lab in lab_dirs():
        init = lab / "src" / "__init__.py"
        if (lab / "solution").is_dir() and init.exists():
            text = init.read_text(encoding="utf-8")
            assert "reference" not in text and "your code" in text, (init, text)
