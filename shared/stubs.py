"""One source, two editions: the student skeletons in ``labNN_*/src`` are generated from the
reference in ``labNN_*/solution``.

In a solution file, the code a student writes sits between marker comments::

    def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
        \"\"\"...docstring stays in the skeleton...\"\"\"
        # BEGIN SOLUTION task 4: keep the k largest logits per row; set the rest to -inf.
        ...
        # END SOLUTION

and the skeleton gets, in its place::

        # TODO(lab01 task 4): keep the k largest logits per row; set the rest to -inf.
        raise NotImplementedError("lab01 task 4: top_k_filter is not written yet (see ...)")

Everything outside the markers (imports, signatures, docstrings, scaffolding) is copied as is.
A block must sit inside a function, and blocks may neither nest nor be left open: each such
mistake is a :class:`MarkerError` naming the file and line.

Hints live beside the answer they lead to, as comments in the solution file (inside a block, or
just before it)::

        # BEGIN SOLUTION task 4: keep the k largest logits per row; set the rest to -inf.
        # HINT task 4 level 1: what must hold of the result, and which reading explains it.
        #   A continuation line starts with "#" and at least two spaces.
        # HINT task 4 level 2: the invariant, the edge case, the shape: one step nearer the code.
        ...
        # END SOLUTION

``course stubs`` strips every hint line from the skeleton; ``course release`` writes a lab's
hints to ``labNN_*/hints.json`` in the student edition (the edition has no ``solution/``), and
``course hint LAB --task K [--level N]`` prints them level by level (:func:`lab_hints`). A task's
levels are numbered from 1 without gaps; level 1 says what to achieve and what to read, each
further level is nearer to the steps.

The skeleton's package ``__init__.py``, where the solution's holds only a docstring, is written
here, not copied: the solution's says it is the reference, which is untrue of the student's ``src/``.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .paths import ROOT, lab_dirs, lab_number

BEGIN = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION\b(?P<rest>.*)$")
END = re.compile(r"^[ \t]*#\s*END SOLUTION\b")
TASK_AND_HINT = re.compile(r"^\s*task\s+(?P<task>\d+)\s*(?:[:\-\u2014]\s*(?P<hint>.*))?$")
HINT = re.compile(r"^[ \t]*#\s*HINT\b(?P<rest>.*)$")
HINT_HEADER = re.compile(r"^\s*task\s+(?P<task>\d+)\s+level\s+(?P<level>\d+)\s*:\s*(?P<text>.*)$")
HINT_CONTINUATION = re.compile(r"^[ \t]*# {2,}(?P<text>\S.*)$")
HINTS_FILE = "hints.json"  # in each lab folder of the student edition

GENERATED_NOTE = (
    "# Student skeleton for {lab}: fill in each TODO, then run `course test {lab}`.\n"
    "# (Generated from the reference solution by `course stubs`.)\n"
)


class MarkerError(ValueError):
    """A malformed ``BEGIN SOLUTION`` / ``END SOLUTION`` pair."""


@dataclass
class SolutionBlock:
    path: Path
    begin_line: int  # 1-based line of the BEGIN marker
    end_line: int  # 1-based line of the END marker
    task: int
    hint: str
    function: str
    indent: str
    body: list[str]  # the solution lines between the markers


@dataclass
class Hint:
    path: Path
    line: int  # 1-based line of its "# HINT" comment
    task: int
    level: int
    function: str  # the function it sits in ("" outside any)
    text: str
    lines: int  # how many lines it takes (header and continuations)


def parse_hints(path: Path, source: str | None = None) -> list[Hint]:
    """Every ``# HINT task K level N: ...`` comment of a solution file (see the module docstring).
    Raises :class:`MarkerError` on a malformed one."""
    source = path.read_text(encoding="utf-8") if source is None else source
    lines = source.splitlines()
    functions = _enclosing_functions(source, path)
    hints: list[Hint] = []
    number = 0
    while number < len(lines):
        match = HINT.match(lines[number])
        number += 1
        if not match:
            continue
        header = HINT_HEADER.match(match.group("rest"))
        if not header or not header.group("text").strip() or int(header.group("level")) < 1:
            raise MarkerError(f"{path}:{number}: a hint must read '# HINT task K level N: text' "
                              "(N from 1; continuation lines start with '#' and two spaces)")
        start, text = number, [header.group("text").strip()]
        while number < len(lines) and (more := HINT_CONTINUATION.match(lines[number])):
            text.append(more.group("text").strip())
            number += 1
        inside = [f for f in functions if f[0] < start <= f[1]]
        hints.append(Hint(path, start, int(header.group("task")), int(header.group("level")),
                          max(inside, key=lambda f: f[0])[2] if inside else "", " ".join(text), number - start + 1))
    return hints


def _hint_lines(hints: list[Hint]) -> set[int]:
    """The 1-based line numbers the hints take."""
    return {hint.line + offset for hint in hints for offset in range(hint.lines)}


def lab_hints(lab_dir: Path) -> dict[int, dict[int, list[dict[str, str]]]]:
    """{task: {level: [{"function": ..., "text": ...}, ...]}} for a lab: read from its
    ``solution/`` where it has one, else from the ``hints.json`` the student edition carries.

    Raises:
        MarkerError: a malformed hint, a hint for a task that has no solution block, or a task
            whose hint levels do not run 1, 2, ... without a gap.
    """
    solution = lab_dir / "solution"
    if not solution.is_dir():
        path = lab_dir / HINTS_FILE
        if not path.is_file():
            return {}
        stored = json.loads(path.read_text(encoding="utf-8"))["tasks"]
        return {int(task): {int(level): entries for level, entries in levels.items()}
                for task, levels in stored.items()}
    hints: dict[int, dict[int, list[dict[str, str]]]] = {}
    tasks_with_blocks = set()
    for path in sorted(solution.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        tasks_with_blocks |= {block.task for block in parse_blocks(path)}
        for hint in parse_hints(path):
            hints.setdefault(hint.task, {}).setdefault(hint.level, []).append(
                {"function": hint.function, "text": hint.text, "where": f"{path.name}:{hint.line}"})
    for task, levels in hints.items():
        if task not in tasks_with_blocks:
            raise MarkerError(f"{lab_dir.name}: hints for task {task}, which has no solution block")
        if sorted(levels) != list(range(1, len(levels) + 1)):
            raise MarkerError(f"{lab_dir.name}: task {task}'s hint levels are {sorted(levels)}; "
                              "they must run 1, 2, ... without a gap")
    return {task: dict(sorted(levels.items())) for task, levels in sorted(hints.items())}


def hints_json(lab_dir: Path) -> str:
    """The ``hints.json`` text the student edition carries for a lab ("" when it has no hints)."""
    hints = lab_hints(lab_dir)
    if not hints:
        return ""
    tasks = {str(task): {str(level): [{"function": e["function"], "text": e["text"]} for e in entries]
                         for level, entries in levels.items()} for task, levels in hints.items()}
    return json.dumps({"lab": lab_dir.name,
                       "about": f"read with: course hint {lab_dir.name[:5]} --task K [--level N]",
                       "tasks": tasks}, indent=1, ensure_ascii=False) + "\n"


def _enclosing_functions(source: str, path: Path) -> list[tuple[int, int, str]]:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as error:
        raise MarkerError(f"{path}:{error.lineno}: not valid Python: {error.msg}") from error
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            spans.append((node.lineno, node.end_lineno or node.lineno, node.name))
    return spans


def parse_blocks(path: Path, source: str | None = None) -> list[SolutionBlock]:
    """Find every solution block in a file. Raises :class:`MarkerError` on malformed markers."""
    source = path.read_text(encoding="utf-8") if source is None else source
    lines = source.splitlines()
    functions = _enclosing_functions(source, path)
    blocks, open_at, header = [], None, None
    for number, line in enumerate(lines, start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_at is not None:
                raise MarkerError(f"{path}:{number}: BEGIN SOLUTION inside the block opened "
                                  f"at line {open_at} (blocks cannot nest)")
            parsed = TASK_AND_HINT.match(begin.group("rest"))
            if not parsed:
                raise MarkerError(f"{path}:{number}: a BEGIN SOLUTION marker must name its task, "
                                  f"as in '# BEGIN SOLUTION task 3: short hint'")
            open_at, header = number, (begin.group("indent"), int(parsed.group("task")),
                                       (parsed.group("hint") or "").strip())
        elif end:
            if open_at is None:
                raise MarkerError(f"{path}:{number}: END SOLUTION without a BEGIN SOLUTION before it")
            indent, task, hint = header
            inside = [f for f in functions if f[0] < open_at <= f[1]]  # a trailing comment is past end_lineno
            if not inside:
                raise MarkerError(f"{path}:{open_at}: a solution block must sit inside a function "
                                  f"(its skeleton raises NotImplementedError)")
            function = max(inside, key=lambda f: f[0])[2]  # the innermost
            blocks.append(SolutionBlock(path, open_at, number, task, hint, function, indent,
                                        lines[open_at:number - 1]))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{path}:{open_at}: BEGIN SOLUTION is never closed by END SOLUTION")
    return blocks


def stub_source(path: Path, lab: str, source: str | None = None) -> str:
    """The skeleton text for one solution file."""
    source = path.read_text(encoding="utf-8") if source is None else source
    lines = source.splitlines()
    blocks = parse_blocks(path, source)
    hinted = _hint_lines(parse_hints(path, source))
    out: list[str] = []
    cursor = 0
    lab_short = f"lab{lab_number(lab):02d}"

    def given(first: int, last: int) -> list[str]:  # lines[first:last], less any hint
        return [line for number, line in enumerate(lines[first:last], start=first + 1) if number not in hinted]

    for block in blocks:
        out += given(cursor, block.begin_line - 1)
        hint = f" {block.hint}" if block.hint else ""
        message = (f"{lab_short} task {block.task}: {block.function} is not written yet "
                   f"(see {lab}/README.md, task {block.task})")
        out.append(f"{block.indent}# TODO({lab_short} task {block.task}):{hint}")
        out.append(f'{block.indent}raise NotImplementedError("{message}")')
        cursor = block.end_line
    out += given(cursor, len(lines))
    text = "\n".join(out) + "\n"
    if blocks:
        text = GENERATED_NOTE.format(lab=lab) + text
    return text


def expected_skeleton(lab_dir: Path) -> dict[Path, bytes]:
    """{path relative to src/: content} that ``src/`` should hold for a lab."""
    solution = lab_dir / "solution"
    expected: dict[Path, bytes] = {}
    for path in sorted(solution.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(solution)
        if relative == Path("__init__.py") and _only_a_docstring(path):
            expected[relative] = skeleton_init(lab_dir).encode("utf-8")
        elif path.suffix == ".py":
            expected[relative] = stub_source(path, lab_dir.name).encode("utf-8")
        else:
            expected[relative] = path.read_bytes()
    return expected


def _only_a_docstring(path: Path) -> bool:
    try:
        body = ast.parse(path.read_text(encoding="utf-8")).body
    except SyntaxError:
        return False
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and isinstance(body[0].value.value, str)


def skeleton_init(lab_dir: Path) -> str:
    """The skeleton package's ``__init__.py``: what ``src/`` is, true in the student edition."""
    heading = next((line.lstrip("#").strip() for line in (lab_dir / "README.md").read_text(
        encoding="utf-8").splitlines() if line.startswith("# ")), lab_dir.name) \
        if (lab_dir / "README.md").is_file() else lab_dir.name
    short = f"lab{lab_number(lab_dir):02d}"
    return (f'"""{heading}: your code.\n\nEach ``TODO({short} task K)`` is yours to write: '
            f'``course test {short} --task K`` checks it,\n``course hint {short} --task K`` gives a hint '
            f'(``--level 2`` a nearer one).\n"""\n')


def _labs_with_solutions(root: Path) -> list[Path]:
    return [lab for lab in lab_dirs(root) if (lab / "solution").is_dir()]


def write_skeletons(root: Path = ROOT) -> list[Path]:
    """Regenerate every ``src/`` from its ``solution/``. Returns the files that changed."""
    changed = []
    for lab in _labs_with_solutions(root):
        src = lab / "src"
        expected = expected_skeleton(lab)
        for relative, content in expected.items():
            target = src / relative
            if not target.exists() or target.read_bytes() != content:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                changed.append(target)
        for stale in sorted(src.rglob("*")) if src.exists() else []:
            if stale.is_file() and "__pycache__" not in stale.parts \
                    and stale.relative_to(src) not in expected:
                stale.unlink()
                changed.append(stale)
    return changed


def check_skeletons(root: Path = ROOT) -> list[str]:
    """One message per skeleton file that differs from what ``write_skeletons`` would write."""
    problems = []
    for lab in _labs_with_solutions(root):
        src = lab / "src"
        expected = expected_skeleton(lab)
        for relative, content in expected.items():
            target = src / relative
            shown = target.relative_to(root)
            if not target.exists():
                problems.append(f"{shown}: missing")
            elif target.read_bytes() != content:
                diff = difflib.unified_diff(
                    target.read_text(encoding="utf-8", errors="replace").splitlines(),
                    content.decode("utf-8", errors="replace").splitlines(), lineterm="", n=0)
                first = next((d for d in list(diff)[2:] if d[:1] in "+-"), "")
                problems.append(f"{shown}: differs from its solution (first change: {first[:100]})")
        if src.exists():
            for extra in sorted(src.rglob("*")):
                if extra.is_file() and "__pycache__" not in extra.parts \
                        and extra.relative_to(src) not in expected:
                    problems.append(f"{extra.relative_to(root)}: has no counterpart in solution/")
    return problems


def all_blocks(root: Path = ROOT) -> list[SolutionBlock]:
    """Every solution block of every lab (for the release leak check)."""
    return [block for lab in _labs_with_solutions(root)
            for path in sorted((lab / "solution").rglob("*.py"))
            for block in parse_blocks(path)]


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder, skipping caches."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True)
