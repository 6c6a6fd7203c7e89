"""Integrity: what no honest solution needs, found by reading the submission's ``src/``.

:func:`scan` parses each ``.py`` file (it never imports one) and lists, with file and line:

- imports of the test machinery (``pytest``, ``_pytest``, ``pluggy``, ``conftest``), of the
  course's grader (``shared.pytest_plugin``, ``shared.grading``) or of any ``solution`` module;
- ways to end or steer the process behind the grader's back: ``os._exit``, ``atexit``,
  ``sys.argv``, ``signal``, ``os.fork``/``setsid``/``kill``, frame and object walking
  (``sys._getframe``, ``gc.get_objects``/``get_referrers``), ``ctypes``, ``builtins`` patching,
  code built at run time (``exec``, ``eval``, ``compile``, ``__import__``);
- text naming places a solution has no business with: ``/proc``, ``.pth``, ``site-packages``,
  ``sys.executable``/``sys.prefix``, ``tests/hidden``, the results file;
- writes (``open`` for writing, ``write_text``, ``shutil``, ``os.remove``...) to a path built from
  ``__file__``, the home folder, the interpreter's folders or an absolute path outside ``/tmp``.

A clean submission gets an empty list (every lab's reference solution is checked to scan clean).
A finding withholds nothing by itself: it points the instructor at code to read. What the graded
process did at run time (``run.py``: records forged or out of order, the guard's ``tamper``
records, the copy or the virtual environment changed) is a runtime finding, and withholds the
lab's score.
"""

from __future__ import annotations

import ast
import re
import site
import sysconfig
from pathlib import Path

from .results import Finding

FORBIDDEN_IMPORTS = {
    "pytest": "imports pytest (the test machinery)",
    "_pytest": "imports pytest's internals",
    "pluggy": "imports pytest's plugin manager",
    "conftest": "imports a conftest",
    "shared.pytest_plugin": "imports the course's pytest plugin",
    "shared.grading": "imports the course's grader",
    "atexit": "imports atexit (runs code after the tests)",
    "ctypes": "imports ctypes (raw memory access)",
    "signal": "imports signal (can disable the time limits)",
    "builtins": "imports builtins (can patch them)",
    "gc": "imports gc (can reach the grader's objects)",
}
FORBIDDEN_CALLS = {
    "os._exit": "calls os._exit (ends the test process without a report)",
    "sys.exit": "calls sys.exit",
    "os.fork": "forks the process",
    "os.setsid": "leaves its process group",
    "os.kill": "sends signals",
    "os.killpg": "sends signals",
    "sys._getframe": "walks the call stack",
    "inspect.currentframe": "walks the call stack",
    "inspect.stack": "walks the call stack",
    "gc.get_objects": "walks every live object",
    "gc.get_referrers": "walks live objects",
    "sys.settrace": "traces the test process",
    "sys.setprofile": "traces the test process",
}
BUILTIN_CALLS = {  # by their bare name only: model.eval() and re.compile() are fine
    "exec": "runs code built at run time (exec)",
    "eval": "runs code built at run time (eval)",
    "compile": "compiles code at run time",
}
FORBIDDEN_NAMES = {
    "sys.argv": "reads the command line (sys.argv)",
    "__builtins__": "touches __builtins__",
}
FORBIDDEN_TEXT = {
    "/proc": "names /proc",
    ".pth": "names a .pth file (code run at every interpreter start)",
    "site-packages": "names site-packages",
    "tests/hidden": "names the hidden tests",
    "course-results": "names the grader's results file",
    "course_results": "names the grader's results file",
}
SOLUTION_TEXT = re.compile(r"[./\\]solution\b|\bsolution[./]")
WRITE_METHODS = {"write_text", "write_bytes", "unlink", "rmdir", "touch", "chmod", "symlink_to", "hardlink_to",
                 "mkdir", "rename"}  # pathlib.Path's
WRITE_FUNCTIONS = {f"os.{name}" for name in ("remove", "unlink", "rename", "replace", "makedirs", "mkdir", "symlink",
                                             "link", "chmod", "rmdir", "truncate")} | {
    f"shutil.{name}" for name in ("copy", "copy2", "copyfile", "copytree", "move", "rmtree")}
RISKY_TARGET = re.compile(r"__file__|home|expanduser|sys\.(executable|prefix)|site|sysconfig|getsitepackages"
                          r"|\.\.|^['\"]/(?!tmp)")


def scan(src: Path, label: str, given: Path | None = None) -> list[Finding]:
    """Findings for every ``.py`` file under ``src`` (``label`` names the folder in the report).

    ``given``: the course's own skeleton of that folder. What it holds already (given code that
    starts a server with ``sys.executable``, say) is no finding: the student did not write it.
    """
    def lines(folder: Path) -> dict[tuple[str, str, str], int]:
        found = {}
        for path in sorted(folder.rglob("*.py")):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
                tree = ast.parse(text)
            except (SyntaxError, ValueError):
                continue  # the tests report it; nothing to scan
            source = text.splitlines()
            for line, what in _visit(tree):
                code = source[line - 1].strip() if 0 < line <= len(source) else ""
                found.setdefault((path.relative_to(folder).as_posix(), what, code), line)
        return found

    ours = lines(given) if given is not None and given.is_dir() else {}
    return [Finding("static", f"{label}/{name}:{line}", what)
            for (name, what, code), line in sorted(lines(src).items(), key=lambda item: (item[0][0], item[1]))
            if (name, what, code) not in ours]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _aliases(tree: ast.AST) -> dict[str, str]:
    """{local name: what it stands for} from ``import x as y`` and ``from x import y as z``."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({alias.asname: alias.name for alias in node.names if alias.asname})
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            aliases.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})
    return aliases


def _visit(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    seen: set[tuple[int, str]] = set()
    aliases = _aliases(tree)

    def resolved(node: ast.AST) -> str:
        name = _dotted(node)
        head, _, rest = name.partition(".")
        return f"{aliases[head]}.{rest}".rstrip(".") if head in aliases else name

    def add(node: ast.AST, what: str) -> None:
        key = (getattr(node, "lineno", 0), what)
        if key not in seen:
            seen.add(key)
            found.append(key)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                names = [base] + [f"{base}.{n}" for n in names]
            for name in names:
                for module, what in FORBIDDEN_IMPORTS.items():
                    if name == module or name.startswith(module + "."):
                        add(node, what)
                if "solution" in name.split("."):
                    add(node, f"imports a solution module ({name})")
        elif isinstance(node, ast.Call):
            called = resolved(node.func)
            for name, what in FORBIDDEN_CALLS.items():
                if called == name or called.endswith("." + name):
                    add(node, what)
            if isinstance(node.func, ast.Name) and node.func.id in BUILTIN_CALLS:
                add(node, BUILTIN_CALLS[node.func.id])
            if called in {"__import__", "importlib.import_module", "import_module"}:
                add(node, "imports a module by name at run time")
            if called in {"setattr", "delattr"} and node.args and _dotted(node.args[0]) in {"pytest", "builtins"}:
                add(node, f"patches {_dotted(node.args[0])}")
            target = _write_target(node, called)
            if target is not None and RISKY_TARGET.search(target):
                add(node, f"writes to {target[:80]!r} (outside a temporary folder)")
        elif isinstance(node, ast.Attribute):
            name = resolved(node)
            for forbidden, what in FORBIDDEN_NAMES.items():
                if name == forbidden or name.endswith("." + forbidden):
                    add(node, what)
        elif isinstance(node, ast.Name) and node.id == "__builtins__":
            add(node, FORBIDDEN_NAMES["__builtins__"])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for needle, what in FORBIDDEN_TEXT.items():
                if needle in node.value:
                    add(node, what)
            if SOLUTION_TEXT.search(node.value):
                add(node, "names a solution module or folder")
    return sorted(found)


def _write_target(node: ast.Call, called: str) -> str | None:
    """The source text of the path a call writes to, or None when it writes nothing."""
    if called in {"open", "io.open", "os.open"} or called.endswith(".open"):
        mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
        writing = isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax+")
        if called == "os.open" or writing:
            subject = node.args[0] if node.args else getattr(node.func, "value", None)
            return ast.unparse(subject) if subject is not None else ""
        return None
    if called in WRITE_FUNCTIONS:
        return " ".join(ast.unparse(arg) for arg in node.args)
    if isinstance(node.func, ast.Attribute) and node.func.attr in WRITE_METHODS:
        return ast.unparse(node.func.value)
    return None


def site_files() -> dict[str, str]:
    """{path: sha256} of the files every later Python process runs at start-up in this
    interpreter's site folders (``.pth`` files, ``sitecustomize.py``, ``usercustomize.py``): a
    submission that adds or edits one would run code in the next submission's grading. Hashes,
    not times: a modification time can be put back."""
    import hashlib

    folders = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    files = {}
    for folder in folders:
        for path in [*Path(folder).glob("*.pth"), Path(folder) / "sitecustomize.py", Path(folder) / "usercustomize.py"]:
            try:
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                continue
    return files


def course_stamp(root: Path, labs: list[str]) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime)} of the course files a grading of ``labs`` uses (the labs,
    ``shared``, the root files), to see they stay untouched. Other labs are left out: a course
    being edited while a lab is graded is no tampering."""
    from ..release import course_files

    stamps = {}
    for relative in course_files(root):
        if len(relative.parts) > 1 and relative.parts[0] not in {*labs, "shared"}:
            continue
        try:
            stat = (root / relative).stat()
        except OSError:
            continue
        stamps[relative.as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return stamps


def differences(before: dict, after: dict) -> list[str]:
    return sorted({*before, *after} - {name for name in before if after.get(name) == before[name]})


def secret_lines(root: Path) -> list[str]:
    """Lines of the hidden tests and of the solutions, long enough to be telling: a visible
    output (Gradescope) that quotes one is redacted (``gradescope.py``)."""
    from ..paths import lab_dirs
    from ..release import MIN_LEAK_LENGTH, solution_lines

    def stripped(path: Path) -> set[str]:
        text = path.read_text(encoding="utf-8", errors="replace")
        return {line.strip() for line in text.splitlines() if len(line.strip()) >= MIN_LEAK_LENGTH}

    hidden, visible = set(), set()
    for lab in lab_dirs(root):
        for path in sorted((lab / "tests").rglob("*.py")):
            (hidden if "hidden" in path.relative_to(lab / "tests").parts else visible).update(stripped(path))
    return sorted((hidden - visible) | set(solution_lines(root)), key=len, reverse=True)
