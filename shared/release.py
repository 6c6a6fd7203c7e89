"""The student edition: the course without its answers.

``course release --out DIR`` copies the course's files except the reference solutions
(``lab*/solution/``), the instructor-only tests (``lab*/tests/hidden/``) and notes
(``lab*/instructor/``: the mutants), the course's own tests (``shared/tests/``) and CI (``.ci/``),
and writes each lab's hints (the ``# HINT`` comments of its solution, ``shared.stubs``) to
``labNN_*/hints.json`` for ``course hint``. It then proves that no line of any solution block
appears anywhere in what it wrote (the hints included), and that no given function restates a
solution block with other names (``shared.leaks``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import leaks
from .paths import LAB_DIR_PATTERN, ROOT, lab_dirs
from .stubs import HINTS_FILE, all_blocks, expected_skeleton, hints_json

EXCLUDED_TOP = {".ci", ".git"}
MIN_LEAK_LENGTH = 16  # shorter lines ("return x", "else:") are too common to mean a leak


class ReleaseError(RuntimeError):
    """The student edition could not be written, or would leak an answer."""


@dataclass
class ReleaseSummary:
    out: Path
    files: int
    left_out: list[str]
    allowed_overlaps: list[str]  # given functions that overlap a block, with the reason they state


def course_files(root: Path = ROOT) -> list[Path]:
    """The course's files, relative to ``root``: git's view when it has one, else a walk."""
    if (root / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=root, capture_output=True, text=True, check=True).stdout
        return sorted(Path(p) for p in listed.split("\0") if p and (root / p).is_file())
    skip = {".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and not skip & set(p.relative_to(root).parts))


def left_out(relative: Path) -> bool:
    """True for a file the student edition must not contain."""
    parts = relative.parts
    if parts[0] in EXCLUDED_TOP or parts[:2] == ("shared", "tests"):
        return True
    if LAB_DIR_PATTERN.match(parts[0]) and len(parts) > 1:
        return parts[1] in {"solution", "instructor"} or parts[1:3] == ("tests", "hidden")
    return False


def given_text(root: Path = ROOT) -> str:
    """What the student edition gives away by design: the generated skeletons (scaffolding and
    hints included) and the ``shared`` package. A solution line found in it is no leak: a
    ``with torch.no_grad():`` in a solution block is no secret when a skeleton has it too."""
    texts = [content.decode("utf-8", errors="replace")
             for lab in lab_dirs(root) if (lab / "solution").is_dir()
             for content in expected_skeleton(lab).values()]
    shared = root / "shared"
    if shared.is_dir():
        texts += [path.read_text(encoding="utf-8", errors="replace") for path in sorted(shared.rglob("*.py"))
                  if not left_out(path.relative_to(root)) and "__pycache__" not in path.parts]
    return "\n".join(texts)


def solution_lines(root: Path = ROOT) -> dict[str, str]:
    """{stripped solution line: where it comes from} for every line long enough to be telling
    and not given away by design (see :func:`given_text`)."""
    given = given_text(root)
    lines = {}
    for block in all_blocks(root):
        for offset, line in enumerate(block.body, start=1):
            text = line.strip()
            if len(text) >= MIN_LEAK_LENGTH and not text.startswith("#") and text not in given:
                lines.setdefault(text, f"{block.path.relative_to(root)}:{block.begin_line + offset}")
    return lines


def literal_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """A regex that finds any of ``words`` (literally), the longest one at each position: the
    words as a trie (``ab(?:c)?`` rather than ``abc|ab``), which ``re`` matches about a hundred
    times faster than an alternation of some two thousand lines."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def branch(node: dict[str, dict]) -> str:
        alternatives = [re.escape(char) + branch(child) for char, child in sorted(node.items()) if char]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if "" in node else body  # greedy: a longer word wins

    return re.compile(branch(trie))


def find_leaks(out: Path, root: Path = ROOT) -> list[str]:
    """Every place in ``out`` where a solution line appears, except in a paragraph of code that
    states why it may (``# leak-check: allowed, <why>`` on its first line or the comment lines
    above it: a test's oracle written from the same library calls as the answer, say)."""
    wanted = solution_lines(root)
    if not wanted:
        return []
    pattern = literal_pattern(wanted)
    found = []
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        lines = text.splitlines()
        for match in pattern.finditer(text):
            if allowed_here(lines, text.count("\n", 0, match.start())):
                continue
            found.append(f"{path.relative_to(out)} holds solution line "
                         f"{wanted[match.group(0)]}: {match.group(0)[:80]!r}")
    return found


def allowed_here(lines: list[str], index: int) -> bool:
    """True when line ``index`` (0-based) sits in a paragraph (lines up to a blank one) that a
    ``# leak-check: allowed`` comment opens, or carries that comment itself."""
    for number in range(index, -1, -1):
        if leaks.ALLOWED.search(lines[number]):
            return True
        if not lines[number].strip():
            return False
    return False


def find_restated(out: Path, root: Path = ROOT) -> list[leaks.Match]:
    """Every function in ``out`` that restates a solution block of ``root`` (see ``shared.leaks``)."""
    files = [(str(path.relative_to(out)), path.read_text(encoding="utf-8", errors="replace"))
             for path in sorted(out.rglob("*.py")) if path.is_file()]
    return leaks.find_restated_blocks(leaks.solution_block_statements(root), files)


def write_release(out: Path, root: Path = ROOT, force: bool = False) -> ReleaseSummary:
    """Write the student edition to ``out`` (see the module docstring).

    Raises:
        ReleaseError: when ``out`` is not empty (and ``force`` is not set), lies inside the course,
            or the written edition would leak a solution line.
    """
    out, root = Path(out).expanduser().resolve(), Path(root).resolve()
    if out == root or root in out.parents:
        raise ReleaseError(f"--out {out} is inside the course; choose a folder outside it")
    if out in root.parents:  # --force would delete the course itself
        raise ReleaseError(f"--out {out} holds the course; choose a folder outside it")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ReleaseError(f"--out {out} exists and is not empty; choose a new folder "
                               "or pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    files, skipped = 0, set()
    for relative in course_files(root):
        if left_out(relative):
            parts = relative.parts
            depth = 1 if parts[0] in EXCLUDED_TOP else 3 if parts[1:3] == ("tests", "hidden") else 2
            skipped.add(str(Path(*parts[:depth])))  # the folder left out, as in ".ci" or "lab01_x/solution"
            continue
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
        files += 1
    for lab in lab_dirs(root):
        hints = hints_json(lab) if (lab / "solution").is_dir() else ""
        if hints:
            (out / lab.name).mkdir(parents=True, exist_ok=True)
            (out / lab.name / HINTS_FILE).write_text(hints, encoding="utf-8")
            files += 1
    problems = find_leaks(out, root)
    restated = find_restated(out, root)
    problems += [f"{match}: given code must call the student's function, not hold its answer"
                 for match in restated if not match.allowed]
    if problems:
        raise ReleaseError("the student edition would leak answers:\n  " + "\n  ".join(problems[:20]))
    allowed = [f"{match} — allowed: {match.allowed}" for match in restated if match.allowed]
    return ReleaseSummary(out=out, files=files, left_out=sorted(skipped), allowed_overlaps=allowed)
