"""Run the "try it" blocks of a doc and check what they print; check the doc's references.

The docs in ``docs/`` show code a reader runs, each block followed by what it prints. So that
no doc goes stale, the course's tests run every block and compare. The conventions:

* A **try-it block** is a fenced ``python`` block whose first line is ``# try it``. The next
  fenced block (only blank lines between) is what it prints. The blocks of one doc run in order
  in one namespace, from the repository root, like one Python session.
* The printed output is compared **line by line** (trailing spaces ignored), except:

  - a line starting with ``~ `` holds measured figures (timings): its words must match, and each
    number may differ from the one shown by up to a factor of :data:`TOLERANCE_FACTOR`;
  - a line that is exactly ``...`` stands for any number of lines (none included).

* **References** that must exist: every relative link ``[text](path)``; every repository path in
  inline code (`` `shared/hardware.py` ``, `` `lab01_huggingface/src/generation.py` ``); every
  dotted name in inline code that starts with ``shared.`` or ``labNN_*.src.``
  (`` `shared.hardware.estimate_memory` ``); every ``course`` command in inline code or in a
  ``bash`` block (`` `course test lab01 --task 3` ``).

Run a doc by hand: ``python -m shared.docs_check docs/01_paged_attention.md``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shlex
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .paths import ROOT

TOLERANCE_FACTOR = 10.0
TRY_IT = "# try it"
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
REPO_PATH = re.compile(r"^(?:shared|docs|lab\d\d_\w+|\.ci)/[\w./-]*[\w/]$")
DOTTED = re.compile(r"^(shared(?:\.\w+)+|lab\d\d_\w+\.src(?:\.\w+)+)(?:\(\))?$")


@dataclass
class Block:
    """A fenced code block: its language, its lines and where it starts in the doc (1-based)."""

    lang: str
    lines: list[str]
    line: int


@dataclass
class TryIt:
    code: Block
    expected: Block


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced code block of a markdown text, in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i].strip())
        if not match:
            i += 1
            continue
        fence, lang, start = match.group(1), match.group(2), i + 1
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append(Block(lang, body, start))
        i += 1
    return blocks


def try_its(text: str) -> list[TryIt]:
    """The doc's try-it blocks, each paired with the block that shows its output.

    Raises:
        ValueError: a try-it block with no output block right after it.
    """
    lines = text.splitlines()
    blocks = fenced_blocks(text)
    pairs = []
    for index, block in enumerate(blocks):
        if block.lang != "python" or not block.lines or not block.lines[0].startswith(TRY_IT):
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        end = block.line + len(block.lines) + 1  # the closing fence (1-based)
        between = lines[end:following.line - 1] if following else []
        if following is None or any(line.strip() for line in between):
            raise ValueError(f"line {block.line}: a try-it block must be followed at once by a block "
                             "showing what it prints")
        pairs.append(TryIt(block, following))
    return pairs


def _within(expected: str, actual: str) -> bool:
    a, b = float(expected.replace(",", "")), float(actual.replace(",", ""))
    if a == b:
        return True
    if a == 0 or b == 0 or (a < 0) != (b < 0):
        return max(abs(a), abs(b)) < 1
    return max(abs(a), abs(b)) / min(abs(a), abs(b)) <= TOLERANCE_FACTOR


def line_matches(expected: str, actual: str) -> bool:
    """Whether one printed line matches one expected line (see the module docstring)."""
    expected, actual = expected.rstrip(), actual.rstrip()
    if not expected.startswith("~ "):
        return expected == actual
    expected = expected[2:]
    if NUMBER.sub("#", expected) != NUMBER.sub("#", actual):
        return False
    return all(_within(e, a) for e, a in zip(NUMBER.findall(expected), NUMBER.findall(actual)))


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Whether printed lines match expected lines, ``...`` standing for any number of lines."""
    if not expected:
        return not actual
    if expected[0].strip() == "...":
        return any(output_matches(expected[1:], actual[skip:]) for skip in range(len(actual) + 1))
    return bool(actual) and line_matches(expected[0], actual[0]) and output_matches(expected[1:], actual[1:])


@dataclass
class BlockResult:
    line: int  # where the try-it block starts in the doc
    ok: bool
    expected: str
    printed: str
    error: str | None
    seconds: float
    missing_module: str | None = None  # the block failed because this package is not installed


def _missing_module(error: BaseException) -> str | None:
    """The top-level package whose absence caused ``error`` (through its chain of causes), if any."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ModuleNotFoundError) and error.name:
            return error.name.split(".")[0]
        error = error.__cause__ or error.__context__
    return None


def run_try_its(path: Path) -> list[BlockResult]:
    """Run every try-it block of a doc in order, in one namespace, from the repository root.

    Stops after the first block that raises (later blocks would only fail for its sake).
    """
    namespace: dict = {"__name__": "__docs__"}
    results = []
    cwd = os.getcwd()
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        for pair in try_its(path.read_text(encoding="utf-8")):
            code = "\n".join(pair.code.lines) + "\n"
            buffer = io.StringIO()
            started = time.perf_counter()
            error, missing = None, None
            try:  # the doc's code, run like a notebook cell
                with contextlib.redirect_stdout(buffer):
                    exec(compile(code, f"{path.name}:{pair.code.line}", "exec"), namespace)
            except Exception as exc:  # reported, with the doc's line numbers in the traceback
                error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3))
                missing = _missing_module(exc)
            printed = buffer.getvalue()
            ok = error is None and output_matches(pair.expected.lines, printed.rstrip("\n").split("\n")
                                                  if printed.strip() else [])
            results.append(BlockResult(pair.code.line, ok, "\n".join(pair.expected.lines), printed,
                                       error, time.perf_counter() - started, missing))
            if error is not None:
                break
    finally:
        os.chdir(cwd)
    return results


# --------------------------------------------------------------------------------------------
# References


def _prose(text: str) -> str:
    """The text without its fenced blocks (inline code in prose is what references are)."""
    keep, inside = [], None
    for line in text.splitlines():
        match = FENCE.match(line.strip())
        if match and inside is None:
            inside = match.group(1)
        elif inside is not None and line.strip().startswith(inside):
            inside = None
        elif inside is None:
            keep.append(line)
    return "\n".join(keep)


def course_commands(text: str) -> list[str]:
    """``course ...`` commands named in inline code or in bash blocks."""
    found = []
    candidates = INLINE.findall(_prose(text))
    candidates += [line for block in fenced_blocks(text) if block.lang in ("bash", "sh", "console")
                   for line in block.lines]
    for candidate in candidates:
        for part in re.split(r"&&|;|\|", candidate):
            words = part.strip().removeprefix("$ ").strip()
            words = re.sub(r"^(?:\.venv/bin/|[A-Z_]+=\S+\s+)+", "", words)
            if words.startswith("course ") and not words.startswith("course: "):
                found.append(words.split("#")[0].strip())
    return found


def _check_command(command: str) -> str | None:
    from . import cli

    argv = shlex.split(command)[1:]
    if "--" in argv:
        argv = argv[:argv.index("--")]
    parser = cli.build_parser()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args, unknown = parser.parse_known_args(argv)
    except SystemExit:
        return f"`{command}`: not a valid course command"
    # as in cli.main: these hand the rest of the line to pytest or to a lab's own parser
    passes_on = {"test", "mutants", *getattr(cli, "LAB_ENTRIES", {})}
    if unknown and args.command not in passes_on:
        return f"`{command}`: course {args.command} has no option {' '.join(unknown)}"
    return None


def _check_dotted(name: str) -> str | None:
    parts = name.removesuffix("()").split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return f"`{name}`: {'.'.join(parts[:cut])} has no {attribute}"
            target = getattr(target, attribute)
        return None
    return f"`{name}`: no such module"


def broken_references(path: Path) -> list[str]:
    """Every link, repository path, dotted name and ``course`` command of a doc that does not exist."""
    text = path.read_text(encoding="utf-8")
    prose = _prose(text)
    problems = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            problems.append(f"link ({target}): no such file")
    for code in INLINE.findall(prose):
        code = code.strip()
        if REPO_PATH.match(code) and not (ROOT / code).exists():
            problems.append(f"`{code}`: no such file in the repository")
        elif DOTTED.match(code) and (error := _check_dotted(code)):
            problems.append(error)
    problems += [error for command in course_commands(text) if (error := _check_command(command))]
    return problems


def word_count(path: Path) -> int:
    """Words of prose (fenced blocks left out)."""
    return len(re.findall(r"[A-Za-z0-9][\w'’-]*", _prose(path.read_text(encoding="utf-8"))))


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.docs_check DOC...``: run each doc's blocks, print a line per block."""
    paths = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    failed = 0
    for path in paths:
        path = path.resolve()
        for problem in broken_references(path):
            print(f"{path.name}: {problem}")
            failed += 1
        for result in run_try_its(path):
            print(f"{path.name}:{result.line}: {'ok' if result.ok else 'DIFFERS'} ({result.seconds:.1f} s)")
            if not result.ok:
                failed += 1
                print(result.error or f"--- shown\n{result.expected}\n--- printed\n{result.printed}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if any(ROOT.glob("lab*/solution")):  # the instructor edition: run the reference
        os.environ.setdefault("COURSE_IMPL", "solution")
    raise SystemExit(main())
