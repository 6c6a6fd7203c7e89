"""Answers hidden in given code: what ``course release`` refuses besides copied lines.

A solution line copied verbatim into the student edition is easy to find (``release.find_leaks``).
A task's answer can also sit in *given* code written afresh: a helper that holds the same decode
loop with other variable names, say. This module compares statements, not text:

- each statement is reduced to its syntax tree with local names erased (``out = model(x)`` and
  ``result = model(y)`` become the same), keeping attribute names, constants and the names a
  module defines or imports (so ``torch.argmax`` stays ``torch.argmax``); a compound statement
  (``for``, ``if``, ``with``) counts by its header;
- a solution block's statements are then looked for, in order, in every function of the student
  edition (the longest common subsequence): a function that repeats at least ``MIN_MATCHED``
  non-trivial statements of a block, and at least ``MIN_SHARE`` of them, gives that block away.

A given function may overlap a block for a reason worth stating (the fixture's own training loop
is the canonical PyTorch loop that lab01's ``train`` also writes): a comment
``# leak-check: allowed, <why>`` on its ``def`` line or the line above it exempts it, and the
release names it with its reason.
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

MIN_MATCHED = 6  # statements of a block found again, in order
MIN_SHARE = 0.4  # ... and at least this share of the block's non-trivial statements
TRIVIAL = (ast.Pass, ast.Break, ast.Continue)
BODY_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")
KEPT_NAMES = frozenset(dir(builtins))
ALLOWED = re.compile(r"#\s*leak-check:\s*allowed\b[,:]?\s*(?P<why>.*)$")


@dataclass(frozen=True)
class Statement:
    key: str  # the statement with local names erased (see the module docstring)
    line: int


@dataclass(frozen=True)
class Match:
    block: str  # "lab01_x/solution/generation.py:52 (task 3, greedy_generate)"
    where: str  # "lab01_x/src/sampling.py:119 (sample_generate)"
    matched: int
    total: int
    allowed: str = ""  # the stated reason, where the given function carries one

    def __str__(self) -> str:
        return (f"{self.where} repeats {self.matched} of the {self.total} statements of "
                f"{self.block}, in order (with other names)")


def module_names(tree: ast.Module) -> frozenset[str]:
    """Names a module defines or imports at its top level: these stay as they are."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(names) | KEPT_NAMES


class _EraseLocals(ast.NodeTransformer):
    def __init__(self, kept: frozenset[str]) -> None:
        self.kept = kept

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return node if node.id in self.kept else ast.copy_location(ast.Name(id="_", ctx=node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return ast.arg(arg="_")


def _header(node: ast.stmt) -> ast.stmt:
    """A compound statement without its nested bodies (they are statements of their own)."""
    copy = type(node)(**{field: getattr(node, field) for field in node._fields})
    for field in BODY_FIELDS:
        if hasattr(copy, field):
            setattr(copy, field, [])
    return copy


def statements(body: list[ast.stmt], kept: frozenset[str]) -> list[Statement]:
    """Every statement under ``body``, in source order, reduced to its key; trivial ones dropped
    (``pass``, ``break``, ``continue``, docstrings, a bare ``return name``)."""
    found: list[Statement] = []
    eraser = _EraseLocals(kept)
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue  # nested definitions are compared on their own
        trivial = isinstance(node, TRIVIAL) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) or (
            isinstance(node, ast.Return) and (node.value is None or isinstance(node.value, ast.Name)))
        if not trivial:
            erased = eraser.visit(_header(node))
            found.append(Statement(ast.dump(erased, annotate_fields=False), node.lineno))
        for field in BODY_FIELDS:
            for child in getattr(node, field, None) or []:
                inner = child.body if isinstance(child, (ast.ExceptHandler, ast.match_case)) else [child]
                found += statements(inner, kept)
    return found


def block_statements(body_lines: list[str], kept: frozenset[str]) -> list[Statement]:
    """A solution block's statements (its lines sit inside a function, so dedent them first)."""
    source = textwrap.dedent("\n".join(body_lines))
    try:
        tree = ast.parse(source)
    except SyntaxError:  # await or yield at top level: parse it inside a function
        tree = ast.parse("async def _block():\n" + textwrap.indent(source, "    "))
        return statements(tree.body[0].body, kept)  # type: ignore[attr-defined]
    return statements(tree.body, kept)


def functions(tree: ast.Module) -> list[tuple[str, int, list[Statement]]]:
    """(name, line, statements) for every function and method in a module."""
    kept = module_names(tree)
    return [(node.name, node.lineno, statements(node.body, kept)) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def common_in_order(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two key lists."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def allowed_reason(lines: list[str], def_line: int) -> str:
    """The reason of a ``# leak-check: allowed, why`` comment on the def line or in the comment
    lines right above it (the reason may run over several comment lines)."""
    start = def_line - 1
    while start >= 1 and lines[start - 1].strip().startswith("#"):
        start -= 1
    comment = " ".join(line.split("#", 1)[1].strip() for line in lines[start:def_line] if "#" in line)
    found = ALLOWED.search("# " + comment) if comment else None
    return (found.group("why").strip() or "(no reason given)") if found else ""


def find_restated_blocks(blocks: list[tuple[str, list[Statement]]], files: list[tuple[str, str]]) -> list[Match]:
    """Given functions that restate a solution block (those marked allowed carry their reason).

    Args:
        blocks: (description, statements) for each solution block.
        files: (path as shown, source) for each Python file of the student edition.
    """
    candidates = [(name, [s.key for s in stmts]) for name, stmts in blocks if len(stmts) >= MIN_MATCHED]
    matches = []
    for shown, source in files:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        lines = source.splitlines()
        for function, line, stmts in functions(tree):
            keys = [s.key for s in stmts]
            if len(keys) < MIN_MATCHED:
                continue
            present = set(keys)
            for block, block_keys in candidates:
                if sum(k in present for k in block_keys) < max(MIN_MATCHED, MIN_SHARE * len(block_keys)):
                    continue  # a cheap bound before the quadratic comparison
                matched = common_in_order(block_keys, keys)
                if matched >= MIN_MATCHED and matched >= MIN_SHARE * len(block_keys):
                    matches.append(Match(block, f"{shown}:{line} ({function})", matched, len(block_keys),
                                         allowed_reason(lines, line)))
    return matches


def solution_block_statements(root: Path) -> list[tuple[str, list[Statement]]]:
    """(description, statements) for every solution block of the course at ``root``."""
    from .stubs import all_blocks

    described, trees = [], {}
    for block in all_blocks(root):
        if block.path not in trees:
            trees[block.path] = module_names(ast.parse(block.path.read_text(encoding="utf-8")))
        where = f"{block.path.relative_to(root)}:{block.begin_line} (task {block.task}, {block.function})"
        described.append((where, block_statements(block.body, trees[block.path])))
    return described
