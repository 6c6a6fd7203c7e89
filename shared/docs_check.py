"""Run the "try it" blocks of a doc and check what they print; check the doc's references.

The docs in ``docs/`` show code a reader runs, each block followed by what it prints. So that
no doc goes stale, the course's tests run every block and compare. The conventions:

* A **try-it block** is a fenced ``python`` block whose first line is ``# try it``. The next
  fenced block (only blank lines between) is what it prints. The blocks of one doc run in order
  in one namespace, from the repository root, like one Python session.
* The printed output is compared **line by line** (trailing spaces ignored), except:

  - a line starting with ``~ `` holds measured figures: its words must match, and its numbers are
    compared by kind (:func:`line_matches`). A *timing* (a number followed by a time or rate unit:
    ``ms``, ``s``, ``tokens/s``...) may differ from the one shown by up to a factor of
    :data:`TOLERANCE_FACTOR`; a *ratio* (``5.9x``) must stay on the same side of 1 ("5.9x faster"
    never passes for 0.2x), whatever its size: a ratio of two timings on a loaded machine can move
    further than any factor (one measured 92.6x where a quiet machine gives 5.9x); any other
    number (a count, a perplexity) must equal the one shown, or lie within the tolerance the line
    states at its end: ``[±1 %]`` (relative) or ``[±0.05]`` (absolute). The bracket is not part of
    the printed line;
  - a line that is exactly ``...`` stands for any number of lines (none included).

* **References** that must exist, in the docs and in the labs' READMEs: every relative link
  ``[text](path)``; every path in inline code (`` `shared/hardware.py` ``, `` `src/generation.py` ``
  in a lab's README, relative to the README's folder or to the repository root); every dotted name
  in inline code that starts with ``shared.`` or ``labNN_*.src.``
  (`` `shared.hardware.estimate_memory` ``); every ``python -m MODULE`` and every ``course``
  command, with its options, in inline code or in a ``bash`` block (`` `course test lab01 --task 3` ``).
  An option named alone in inline code (`` `--max-model-len` ``) must be one that some tool the
  course can read takes (:func:`known_options`: the course's command lines, llama.cpp's tools, the
  installed vLLM, SGLang, llama-cpp-python server and pip), or be marked as another project's.
  A llama.cpp tool's command line (``llama-completion ...``, ``llama-server ...``) may use only the
  options llama.cpp's ``common/arg.cpp`` gives that tool (checked where the llama-cpp-python
  source package is on the machine, :func:`llama_cpp_options`).
  A plain python block whose first line is ``# runs against: course serve ...`` is run by the tests
  against that server (:func:`served_blocks`).
  A path that belongs to another project is marked by naming the project in the possessive right
  before it (ggml's `` `docs/gguf.md` ``, or a list after one: llama.cpp's `` `a.h` `` and `` `b.c` ``)
  and is not looked for; a path that starts with an installed package's name
  (`` `sglang/lang/api.py` ``) is looked for in that installed package.

* **Version claims**: ``docs/versions.md`` holds one table of every default and version the docs
  state; :func:`version_claims` reads it and :func:`check_claim` compares each row with the
  installed package (see that file).

Run a doc by hand: ``python -m shared.docs_check docs/01_paged_attention.md``.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.metadata
import importlib.util
import io
import os
import re
import shlex
import sys
import tarfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .paths import ROOT

TOLERANCE_FACTOR = 10.0
TRY_IT = "# try it"
#: A number that is not part of a name (the 4 and 0 of ``Q4_0``, the 32 of ``F32`` are not numbers).
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.]*\d)")
#: What follows a number that makes it a timing (time or rate): it may vary by TOLERANCE_FACTOR.
TIMING_UNIT = re.compile(r"\s*(?:ms|µs|us|ns|s|sec|seconds?|min|minutes?|h|hours?|(?:tokens?|tok|requests?|req|it|"
                         r"[KMGT]i?B)/s)(?![\w/])")
#: What follows a number that makes it a ratio (of timings, as a rule): it keeps its side of 1.
RATIO_UNIT = re.compile(r"\s*[x×](?!\w)")
#: The tolerance a ``~`` line may state at its end for its other numbers: ``[±1 %]``, ``[±0.05]``.
STATED_TOLERANCE = re.compile(r"\s*\[±\s*(\d+(?:\.\d+)?)\s*(%?)\]\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
REPO_PATH = re.compile(r"^(?:shared|docs|lab\d\d_\w+|\.ci)/[\w./-]*[\w/]$")
#: Inline code that names a file or folder: words joined by slashes, ending in an extension or a slash.
PATH_LIKE = re.compile(r"^(?:\.\./)*[\w.-]+(?:/[\w.-]+)*(?:\.[A-Za-z]\w{0,4}|/)$")
#: A project named in the possessive right before a path marks it as that project's: "ggml's ",
#: "llama.cpp's own loader (" (up to three words and a parenthesis between); the course's own
#: words (course, lab, doc, task...) name no other project.
POSSESSIVE = re.compile(r"(?<![\w.+-])(?!(?:course|lab|doc|task|test|README|solution|reader|student)(?:'|’))"
                        r"[A-Za-z][\w.+-]*(?:'s|’s|s'|s’)(?:\s+[\w-]+){0,3}\s*\(?\s*$")
#: What may stand between two paths of one list, so that the second belongs to the first's project.
LIST_JOIN = re.compile(r"^\s*(?:,|;|and|or|,\s*and)?\s*$")
#: Installed packages whose files the docs name by their path inside the package.
INSTALLED_PACKAGES = ("vllm", "sglang", "transformers", "llama_cpp", "gguf", "xgrammar", "torch",
                      "huggingface_hub", "openai")
PYTHON_M = re.compile(r"\bpython3?\s+-m\s+([A-Za-z_][\w.]*)")
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


def _within_factor(a: float, b: float) -> bool:
    """Whether two measurements agree within TOLERANCE_FACTOR (a ratio of magnitudes)."""
    if a == b:
        return True
    if a == 0 or b == 0 or (a < 0) != (b < 0):
        return max(abs(a), abs(b)) < 1
    return max(abs(a), abs(b)) / min(abs(a), abs(b)) <= TOLERANCE_FACTOR


def _number_kind(line: str, match: re.Match) -> str:
    """``"timing"``, ``"ratio"`` or ``"other"``: what follows the number decides."""
    rest = line[match.end():]
    if TIMING_UNIT.match(rest):
        return "timing"
    if RATIO_UNIT.match(rest):
        return "ratio"
    return "other"


def number_matches(kind: str, expected: float, actual: float, tolerance: tuple[float, bool] | None) -> bool:
    """Whether a printed number matches the one shown, given its kind (see the module docstring).

    Args:
        kind: ``"timing"``, ``"ratio"`` or ``"other"`` (:func:`_number_kind`).
        expected, actual: the number shown and the number printed.
        tolerance: the line's stated tolerance for other numbers, ``(amount, relative)``, or None
            (then they must be equal).
    """
    if kind == "timing":
        return _within_factor(expected, actual)
    if kind == "ratio":  # "5.9x faster" must not pass for 0.2x; its size depends on the machine's load
        return (expected > 1) == (actual > 1) and (expected < 1) == (actual < 1)
    if tolerance is None:
        return expected == actual
    amount, relative = tolerance
    allowed = amount / 100 * abs(expected) if relative else amount
    return abs(actual - expected) <= allowed + 1e-12


def line_matches(expected: str, actual: str) -> bool:
    """Whether one printed line matches one expected line (see the module docstring)."""
    expected, actual = expected.rstrip(), actual.rstrip()
    if not expected.startswith("~ "):
        return expected == actual
    expected = expected[2:]
    tolerance = None
    if stated := STATED_TOLERANCE.search(expected):
        tolerance = (float(stated.group(1)), stated.group(2) == "%")
        expected = expected[:stated.start()].rstrip()
    if NUMBER.sub("#", expected) != NUMBER.sub("#", actual):
        return False
    return all(number_matches(_number_kind(expected, e), float(e.group().replace(",", "")),
                              float(a.group().replace(",", "")), tolerance)
               for e, a in zip(NUMBER.finditer(expected), NUMBER.finditer(actual)))


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


#: Placeholders a doc writes in a command, and a value that stands for them.
_PLACEHOLDERS = {"K": "1", "N": "1", "labNN": "lab01", "LAB": "lab01", "labN": "lab01"}


def _check_command(command: str) -> str | None:
    from . import cli

    argv = [_PLACEHOLDERS.get(word, "x" if re.fullmatch(r"[A-Z][A-Z_]*", word) else word)
            for word in shlex.split(command)[1:]]  # `course test labNN --task K`: a pattern, not a typo
    if "--" in argv:
        argv = argv[:argv.index("--")]
    parser = cli.build_parser()
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint), contextlib.redirect_stdout(io.StringIO()):
            args, unknown = parser.parse_known_args(argv)
    except SystemExit as exit_:
        # `course release` named without its arguments, or `course mutants --help`: the command exists
        if exit_.code == 0 or "the following arguments are required" in complaint.getvalue():
            return None
        return f"`{command}`: not a valid course command ({complaint.getvalue().strip().splitlines()[-1]})"
    # as in cli.main: these hand the rest of the line to pytest or to a lab's own parser
    passes_on = {"test", "mutants", "vllm", *getattr(cli, "LAB_ENTRIES", {})}
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


def _without_parentheses(text: str) -> str:
    """The text with its parenthesised asides removed (innermost first)."""
    while (shorter := re.sub(r"\([^()]*\)", "", text)) != text:
        text = shorter
    return text


# --------------------------------------------------------------------------------------------
# Plain blocks that run against a course server


@dataclass
class ServedBlock:
    """A plain ``python`` block whose first line is ``# runs against: COMMAND`` (a ``course serve``
    command): it needs that server running, so it is not a try-it block, but the tests start the
    server and run it (see :func:`point_at`)."""

    command: str
    code: str
    line: int


SERVED = "# runs against: "
LOOPBACK_URL = re.compile(r"http://127\.0\.0\.1:\d+")


def served_blocks(text: str) -> list[ServedBlock]:
    """The doc's plain python blocks marked ``# runs against: course serve ...``."""
    return [ServedBlock(block.lines[0][len(SERVED):].strip(), "\n".join(block.lines) + "\n", block.line)
            for block in fenced_blocks(text)
            if block.lang == "python" and block.lines and block.lines[0].startswith(SERVED)]


def point_at(code: str, base_url: str) -> str:
    """The block's code with its loopback address (``http://127.0.0.1:PORT``) replaced by ``base_url``,
    the server the tests started on a free port."""
    return LOOPBACK_URL.sub(base_url.rstrip("/"), code)


def _installed_package_dir(name: str) -> Path | None:
    """Where an installed top-level package lives (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _check_path(code: str, doc: Path) -> str | None:
    """A path in a doc's inline code that is not where the doc says (None if it is).

    Looked for relative to the doc's folder, then to the repository root; one that starts with an
    installed package's name is looked for in that package (and not checked where it is missing).
    """
    first = code.split("/")[0]
    if first in INSTALLED_PACKAGES and not (ROOT / first).exists():
        package = _installed_package_dir(first)
        if package is None or (package.parent / code.rstrip("/")).exists():
            return None
        return f"`{code}`: not in the installed {first} ({package})"
    if (doc.parent / code).exists() or (ROOT / code).exists():
        return None
    return (f"`{code}`: no such file in the repository (another project's path? name the project "
            "right before it, as in ggml's `docs/gguf.md`)")


def _check_module(module: str) -> str | None:
    """A ``python -m MODULE`` whose module does not exist (None if it does, or cannot be checked)."""
    parts = module.split(".")
    if re.fullmatch(r"lab\d\d_\w+", parts[0]) and len(parts) > 1 and parts[1] == "solution" \
            and not (ROOT / parts[0] / "solution").exists():
        return None  # the student edition has no reference solution to run
    base = ROOT / parts[0] if (ROOT / parts[0]).is_dir() else _installed_package_dir(parts[0])
    if base is None:
        return None  # a package this machine does not have: nothing to check it against
    target = base.joinpath(*parts[1:])
    if target.with_suffix(".py").is_file() or (target / "__main__.py").is_file():
        return None
    return f"`python -m {module}`: no such module ({target.relative_to(base.parent)}.py does not exist)"


# llama.cpp's command-line tools: their options are llama.cpp's common/arg.cpp, as vendored in
# the llama-cpp-python source package (found as lab 03 finds it; nothing is checked without it).

#: Which option set (llama.cpp's ``LLAMA_EXAMPLE_*``) each tool parses its command line with.
LLAMA_CPP_TOOLS = {"llama-completion": "COMPLETION", "llama-cli": "CLI", "llama-server": "SERVER",
                   "llama-perplexity": "PERPLEXITY", "llama-embedding": "EMBEDDING", "llama-imatrix": "IMATRIX"}
_LLAMA_CPP_FILES = ("common/arg.cpp", "common/common.h")
_NAME_LIST = re.compile(r'\s*\{(\s*"[^"]+"(?:\s*,\s*"[^"]+")*\s*)\}\s*,')


@functools.lru_cache(maxsize=1)
def llama_cpp_sources() -> dict[str, str]:
    """``{path: text}`` of llama.cpp's ``common/arg.cpp`` and ``common/common.h`` from the
    llama-cpp-python source package, or ``{}`` where this machine has none."""
    try:
        from lab03_llama_cpp.llama_cpp_source import find_sdist
    except ImportError:
        return {}
    sdist = find_sdist()
    if sdist is None:
        return {}
    found: dict[str, str] = {}
    with tarfile.open(sdist) as archive:
        for member in archive:
            for wanted in _LLAMA_CPP_FILES:
                if member.name.endswith("/vendor/llama.cpp/" + wanted) and (data := archive.extractfile(member)):
                    found[wanted] = data.read().decode("utf-8", errors="replace")
            if len(found) == len(_LLAMA_CPP_FILES):
                break
    return found


@functools.lru_cache(maxsize=1)
def llama_cpp_options() -> list[tuple[set[str], set[str], set[str]]]:
    """Every option llama.cpp's tools accept: ``(names, examples, excludes)`` per ``add_opt``.

    An option without ``set_examples`` belongs to ``COMMON``, which every tool inherits.
    """
    source = llama_cpp_sources().get("common/arg.cpp", "")
    lists = {name: set(re.findall(r"LLAMA_EXAMPLE_(\w+)", body)) for name, body in
             re.findall(r"static std::initializer_list<enum llama_example> (\w+) = \{([^}]*)\}", source)}
    options = []
    for chunk in source.split("add_opt(common_arg(")[1:]:
        names: set[str] = set()
        position = 0  # the leading brace lists of names: {"-kvu", "--kv-unified"}, {"-no-kvu", ...},
        while (group := _NAME_LIST.match(chunk, position)) is not None:
            names |= set(re.findall(r'"([^"]+)"', group.group(1)))
            position = group.end()
        chunk = chunk.split("add_opt(")[0]
        examples: set[str] = set()
        for listed in re.findall(r"\.set_examples\((\{[^}]*\}|\w+)\)", chunk):
            examples |= set(re.findall(r"LLAMA_EXAMPLE_(\w+)", listed)) or lists.get(listed, set())
        excludes = {name for listed in re.findall(r"\.set_excludes\(\{([^}]*)\}\)", chunk)
                    for name in re.findall(r"LLAMA_EXAMPLE_(\w+)", listed)}
        options.append((names, examples or {"COMMON"}, excludes))
    return options


def _check_llama_cpp_command(command: str) -> str | None:
    """A llama.cpp tool's command line with an option that tool does not take (None if all exist,
    or if llama.cpp's source is not on this machine to check against)."""
    words = command.replace("…", " ").split()
    example = LLAMA_CPP_TOOLS.get(words[0]) if words else None
    options = llama_cpp_options() if example else []
    if not options:
        return None
    for word in words[1:]:
        if not word.startswith("-") or re.fullmatch(r"-?\d[\d.]*", word):
            continue
        accepted = [(examples, excludes) for names, examples, excludes in options if word in names]
        if not accepted:
            return f"`{command}`: llama.cpp has no option {word}"
        if not any((example in examples or "COMMON" in examples) and example not in excludes
                   for examples, excludes in accepted):
            return f"`{command}`: {words[0]} does not take {word} (llama.cpp's common/arg.cpp gives it to other tools)"
    return None


# Options named on their own in prose (`--gpu-memory-utilization`): each must be one that a tool
# the course can read takes. Which tool is not checked (prose rarely says it in a parsable way).

#: Where tools declare their options: (package, files, how). ``fields``: each class-level annotated
#: name of those files is an option, ``--name-with-dashes``; ``fields_as_is``: ``--name_as_is``
#: (pydantic settings); ``literals``: every quoted ``"-x"`` / ``"--x"`` in them.
OPTION_SOURCES = (
    ("vllm", ("engine/arg_utils.py", "entrypoints/launchers/cli_args.py"), "fields"),
    ("vllm", ("engine/arg_utils.py", "entrypoints/launchers/cli_args.py", "entrypoints/openai/api_server.py",
              "benchmarks/serve.py"), "literals"),
    ("sglang", ("srt/arg_groups/fields/*.py",), "fields"),
    ("sglang", ("srt/arg_groups/fields/*.py",), "literals"),
    ("llama_cpp", ("server/settings.py",), "fields_as_is"),
    ("pip", ("_internal/cli/cmdoptions.py",), "literals"),
)
_OPTION_LITERAL = re.compile(r"""["'](--?[A-Za-z][\w.-]*)["']""")


def _class_field_names(source: str) -> set[str]:
    tree = ast.parse(source)
    return {statement.target.id for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
            for statement in node.body
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)}


@functools.lru_cache(maxsize=1)
def known_options() -> frozenset[str]:
    """Every option this machine can tell exists: the course's own command lines (any
    ``add_argument`` / ``addoption`` in the repository), llama.cpp's tools, and the installed
    vLLM, SGLang, llama-cpp-python server and pip (read from their source, not imported)."""
    options: set[str] = set()
    for path in [*ROOT.glob("shared/*.py"), *ROOT.glob("lab0*/**/*.py"), *ROOT.glob("*.py")]:
        text = path.read_text(encoding="utf-8", errors="replace")
        for call in re.finditer(r"(?:add_argument|addoption)\(([^)]*)", text):
            options |= set(_OPTION_LITERAL.findall(call.group(1)))
    options |= {name for names, _, _ in llama_cpp_options() for name in names}
    for package, patterns, how in OPTION_SOURCES:
        base = _installed_package_dir(package)
        for path in [found for pattern in patterns for found in (base.glob(pattern) if base else [])]:
            text = path.read_text(encoding="utf-8", errors="replace")
            if how == "literals":
                options |= set(_OPTION_LITERAL.findall(text))
            else:
                names = _class_field_names(text)
                options |= {"--" + (name if how == "fields_as_is" else name.replace("_", "-")) for name in names}
    return frozenset(options)


def _check_option(code: str) -> str | None:
    """An option named alone in inline code (``--max-model-len``, ``-np 4``) that no tool here takes."""
    flag = code.split()[0].split("=")[0]
    flag = flag.split(".")[0] if flag.startswith("--") else flag  # --structured-outputs-config.backend
    options = known_options()
    if flag in options or (len(flag) > 3 and any(option.startswith(flag) for option in options)):
        return None  # argparse also takes an unambiguous prefix (SGLang's --tp for --tp-size)
    if not llama_cpp_options() or any(_installed_package_dir(package) is None for package, _, _ in OPTION_SOURCES):
        return None  # a tool this machine cannot read may take it (install.sh --minimal, another platform)
    return (f"`{code}`: no tool the course can read takes {flag} (another project's? name it right "
            "before, as in TGI's `--num-shard`)")


def tool_commands(text: str, tools: tuple[str, ...]) -> list[str]:
    """Command lines that start with one of ``tools``, in inline code or in bash blocks."""
    candidates = INLINE.findall(_prose(text))
    candidates += [line for block in fenced_blocks(text) if block.lang in ("bash", "sh", "console")
                   for line in block.lines]
    return [candidate.strip().removeprefix("$ ") for candidate in candidates
            if candidate.strip().removeprefix("$ ").split(" ")[0] in tools]


def python_modules(text: str) -> list[str]:
    """Modules run as ``python -m MODULE`` in inline code or in bash blocks."""
    candidates = INLINE.findall(_prose(text))
    candidates += [line for block in fenced_blocks(text) if block.lang in ("bash", "sh", "console")
                   for line in block.lines]
    return [module for candidate in candidates for module in PYTHON_M.findall(candidate)]


def broken_references(path: Path) -> list[str]:
    """Every link, path, dotted name, ``python -m`` module and ``course`` command of a doc (or of a
    lab's README) that does not exist; another project's paths, marked as such, are left alone."""
    text = path.read_text(encoding="utf-8")
    prose = _prose(text)
    problems = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            problems.append(f"link ({target}): no such file")
    external_end = -1  # where the last path marked as another project's ended
    for match in INLINE.finditer(prose):
        code = match.group(1).strip()
        if DOTTED.match(code):
            if error := _check_dotted(code):
                problems.append(error)
            continue
        if POSSESSIVE.search(prose[max(0, match.start() - 80):match.start()]) or (
                external_end >= 0 and LIST_JOIN.match(_without_parentheses(prose[external_end:match.start()]))):
            external_end = match.end()  # another project's name, path or list of them
            continue
        if re.match(r"--?[A-Za-z]", code):
            if error := _check_option(code):
                problems.append(error)
            continue
        if not (REPO_PATH.match(code) or ("/" in code and PATH_LIKE.match(code))):
            continue
        if error := _check_path(code, path):
            problems.append(error)
    problems += [error for module in python_modules(text) if (error := _check_module(module))]
    problems += [error for command in tool_commands(text, tuple(LLAMA_CPP_TOOLS))
                 if (error := _check_llama_cpp_command(command))]
    problems += [error for command in course_commands(text) if (error := _check_command(command))]
    return problems


# --------------------------------------------------------------------------------------------
# Version claims: docs/versions.md, one table of every default and version the docs state

VERSIONS = ROOT / "docs" / "versions.md"


@dataclass
class VersionClaim:
    """One row of the versions table: what is claimed, the value the docs state, where they state
    it, and where the installed package says it (a *reading*, see :func:`read_claim`)."""

    what: str
    value: str
    stated_in: list[str]
    reading: str
    line: int


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def version_claims(path: Path = VERSIONS) -> list[VersionClaim]:
    """The rows of the table under the header ``| claim | value | stated in | read from |``.

    Raises:
        ValueError: the file has no such table, or a row has the wrong number of cells.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    header = next((i for i, line in enumerate(lines) if [c.lower() for c in _cells(line)][:4]
                   == ["claim", "value", "stated in", "read from"]), None)
    if header is None:
        raise ValueError(f"{path}: no table with the header | claim | value | stated in | read from |")
    claims = []
    for number, line in enumerate(lines[header + 2:], start=header + 3):
        if not line.strip().startswith("|"):
            break
        cells = _cells(line)
        if len(cells) != 4:
            raise ValueError(f"{path}:{number}: a row needs 4 cells, not {len(cells)}")
        what, value, stated, reading = (cell.replace("`", "") for cell in cells)
        claims.append(VersionClaim(what, value, [s.strip() for s in stated.split(",") if s.strip()],
                                   reading, number))
    return claims


def _literal_default(node: ast.expr) -> object:
    """The value of a default: a literal, or the ``default`` of a ``Field(...)`` / ``field(...)``."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("Field", "field"):
        for keyword in node.keywords:
            if keyword.arg == "default":
                return ast.literal_eval(keyword.value)
        if node.args:
            return ast.literal_eval(node.args[0])
        raise LookupError("a field without a default")
    return ast.literal_eval(node)


def python_default(source: Path, name: str) -> object:
    """A default as written in a Python file, read without importing it.

    Args:
        source: the file.
        name: ``NAME`` (a module-level assignment), ``Class.attribute`` (a class-level assignment,
            ``Field(default=...)`` included) or ``Class.method(parameter)`` / ``function(parameter)``
            (a parameter's default).

    Raises:
        LookupError: no such name or parameter, or it has no default.
    """
    match = re.fullmatch(r"([\w.]+?)(?:\((\w+)\))?", name)
    if not match:
        raise LookupError(f"cannot read {name!r}")
    scope: list[ast.stmt] = ast.parse(source.read_text(encoding="utf-8")).body
    node: ast.stmt | None = None
    for part in match.group(1).split("."):
        node = next((stmt for stmt in scope if (
            isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == part) or (
            isinstance(stmt, ast.AnnAssign) and getattr(stmt.target, "id", None) == part) or (
            isinstance(stmt, ast.Assign) and any(getattr(t, "id", None) == part for t in stmt.targets))), None)
        if node is None:
            raise LookupError(f"{source}: no {part} in {match.group(1)}")
        scope = node.body if isinstance(node, ast.ClassDef) else []
    parameter = match.group(2)
    if parameter:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise LookupError(f"{source}: {match.group(1)} is not a function")
        arguments = node.args
        positional = arguments.posonlyargs + arguments.args
        with_defaults = [a.arg for a in positional][len(positional) - len(arguments.defaults):]
        defaults = dict(zip(with_defaults, arguments.defaults))
        defaults.update({a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None})
        if parameter not in defaults:
            raise LookupError(f"{source}: {match.group(1)} has no parameter {parameter} with a default")
        return ast.literal_eval(defaults[parameter])
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
        raise LookupError(f"{source}: {match.group(1)} has no value")
    return _literal_default(node.value)


def read_claim(reading: str) -> tuple[object, str | None]:
    """What the installed package says for one row: ``(value, None)``, or ``(None, why not)`` where
    it cannot be read here (the package is not installed, or the source is not a Python package).

    Readings:
        ``version DIST[, DIST...]``: the installed version of the first distribution found;
        ``python PATH NAME``: :func:`python_default` of ``PATH`` (inside an installed package, or
        in this repository), without importing it;
        ``attr MODULE NAME``: an attribute of an imported module;
        ``llama.cpp FILE NAME``: the initial value of ``NAME = ...;`` in llama.cpp's FILE, as vendored
        in the llama-cpp-python source package;
        ``source TEXT``: not readable from an installed package; TEXT says where it comes from.

    Raises:
        LookupError: the reading names something the package does not have (the claim is stale).
        ValueError: an unknown kind of reading.
    """
    kind, _, rest = reading.partition(" ")
    if kind == "version":
        names = [name.strip() for name in rest.split(",")]
        for name in names:
            try:
                return importlib.metadata.version(name), None
            except importlib.metadata.PackageNotFoundError:
                continue
        return None, f"{' / '.join(names)} is not installed here"
    if kind == "python":
        where, name = rest.split()
        first = where.split("/")[0]
        if (ROOT / first).is_dir():
            return python_default(ROOT / where, name), None
        package = _installed_package_dir(first)
        if package is None:
            return None, f"{first} is not installed here"
        return python_default(package.parent / where, name), None
    if kind == "attr":
        module_name, name = rest.split()
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            return None, f"{module_name} cannot be imported here ({error})"
        if not hasattr(module, name):
            raise LookupError(f"{module_name} has no {name}")
        return getattr(module, name), None
    if kind == "llama.cpp":
        where, name = rest.split()
        sources = llama_cpp_sources()
        if where not in sources:
            return None, f"llama.cpp's {where} is not here (it comes with the llama-cpp-python source package)"
        match = re.search(rf"\b{re.escape(name)}\s*=\s*([^;,]+)[;,]", sources[where])
        if not match:
            raise LookupError(f"llama.cpp's {where} has no {name} = ...")
        return ast.literal_eval(match.group(1).strip().removesuffix("f")), None
    if kind == "source":
        return None, f"not readable from an installed package: {rest}"
    raise ValueError(f"unknown reading {reading!r} (version, python, attr or source)")


def claim_holds(shown: str, actual: object) -> bool:
    """Whether the value a doc states (``shown``, as written in the table) is what was read.

    A version may be shown as a prefix (``5.19`` for 5.19.0, ``1.x`` for any 1.*); a value may carry
    a remark in parentheses after it (``None (one token per page)``).
    """
    shown = re.sub(r"\s+\(.*\)$", "", shown).strip().strip("\"'")
    if isinstance(actual, str) and re.fullmatch(r"\d+(?:\.\w+)*", shown):
        prefix = shown.removesuffix(".x")
        return actual == prefix or actual.startswith(prefix + ".") or actual.startswith(prefix + "+")
    if isinstance(actual, bool) or actual is None:
        return shown == str(actual)
    if isinstance(actual, (int, float)):
        try:
            return float(shown) == float(actual)
        except ValueError:
            return False
    return shown == str(actual)


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
