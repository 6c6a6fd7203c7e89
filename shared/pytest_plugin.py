"""The course's pytest plugin, loaded by the root ``conftest.py``.

It adds:

- ``--impl student|solution`` (or ``$COURSE_IMPL``): which code the tests import (see ``shared.impl``);
- ``--model PATH`` (or ``$COURSE_MODEL``): a local Hugging Face model folder to use instead of the
  fixture; ``--device auto|cpu|cuda|mps`` for the model fixtures (default cpu, for exact tests);
- ``--task K``: run only task K's tests (repeatable); a lab test file whose text holds no
  ``task(K)`` marker is not even imported (``shared.tasks``);
- ``--model`` must name a model folder: anything else is a usage error naming ``--model``;
- markers: ``task(K)`` and ``points(N)`` on every graded test, ``scaffold`` for tests of given
  code (no points), ``hidden`` (automatic under ``tests/hidden/``), and the requirement markers
  ``gpu``, ``vllm``, ``sglang``, ``llama_cpp``, ``xgrammar`` that skip with a reason naming what is
  missing and how to get it;
- a NotImplementedError from an *earlier* task is re-raised as "needs lab01 task 1 first: ...";
- ``--course-results FILE``: one JSON line per collected test, per test started and per result,
  written as they happen, so the grader knows where a run died (``shared.grading``); with the
  grader's key (``$COURSE_RESULTS_KEY_FD``) each line is numbered and signed. Before and after
  every test the plugin checks that nothing replaced what it relies on (pytest's report classes
  and runner, its own functions, the hooks registered, the oracles tests judge with, the results
  descriptor), by identity and by code object: a change is written as a ``tamper`` record, and
  the grader withholds the score;
- in a grading run (``--course-results``), Hypothesis runs with the ``course-grading`` profile: no
  wall-clock deadline, no example database, the same examples for every submission; in every run
  its ``explain`` phase is off (outside grading: the ``course`` profile, Hypothesis's own less it);
- the fixture models the collected tests use are built (or waited for) before the first test
  starts, so that no test's time limit counts a build;
- session fixtures: ``model_dir``, ``draft_model_dir``, ``tokenizer``, ``model``, ``draft_model``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from . import hardware
from .impl import IMPL_ENV, IMPLS
from .paths import LAB_DIR_PATTERN, ROOT

NOT_IMPLEMENTED = re.compile(r"\blab(\d\d) task (\d+)\b")

REQUIREMENTS = {
    "gpu": "needs an NVIDIA GPU (CUDA)",
    "vllm": "needs vLLM",
    "sglang": "needs SGLang's frontend language",
    "llama_cpp": "needs llama.cpp's Python bindings (llama-cpp-python)",
    "xgrammar": "needs xgrammar",
}
MARKERS = {
    "task(number)": "the lab task a graded test belongs to",
    "points(n)": "points a graded test is worth",
    "scaffold": "tests given scaffolding, not the student's work: no points",
    "hidden": "instructor-only test (lives under tests/hidden/, left out of the student edition)",
    **{name: f"{reason}; skipped where it is missing" for name, reason in REQUIREMENTS.items()},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course")
    group.addoption("--impl", choices=sorted(IMPLS), default=os.environ.get(IMPL_ENV, "student"),
                    help="test the student skeleton in src/ (default) or the reference solution/")
    group.addoption("--model", default=None, metavar="PATH",
                    help="a local Hugging Face model folder to use instead of the fixture model")
    group.addoption("--device", default=os.environ.get("COURSE_TEST_DEVICE", "cpu"),
                    help="device for the model fixtures: auto, cpu, cuda or mps (default cpu)")
    group.addoption("--task", action="append", type=int, default=[], metavar="K",
                    help="run only this task's tests (repeatable)")
    group.addoption("--course-results", default=None, metavar="FILE",
                    help="write one JSON line per collected test and per result (for the grader)")


def pytest_configure(config: pytest.Config) -> None:
    os.environ[IMPL_ENV] = config.getoption("--impl")
    # The course runs offline: never let a library reach for a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    model = config.getoption("--model")
    if model and model != "fixture":
        path = Path(model).expanduser().resolve()
        if not path.is_dir():
            raise pytest.UsageError(f"--model {model}: no such folder ({path})")
        if not (path / "config.json").is_file():
            raise pytest.UsageError(f"--model {model}: {path} is not a Hugging Face model folder (it has no "
                                    "config.json; a model hub name cannot be used: the course runs offline)")
        os.environ["COURSE_MODEL"] = str(path)
    elif model == "fixture":
        os.environ["COURSE_MODEL"] = "fixture"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for marker, text in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    results = config.getoption("--course-results")
    # Closed in pytest_unconfigure; lines are flushed one by one so a crash loses none.
    config._course_results = _Records(results) if results else None
    if results:
        _use_grading_hypothesis_profile(config)
    else:
        _use_course_hypothesis_profile(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    records = getattr(config, "_course_results", None)
    if records:
        records.close()


#: The grader passes a key on this descriptor (read once, then closed): each record line is
#: ``MAC JSON``, numbered, so the grader can tell the plugin's records from any others.
RESULTS_KEY_FD_ENV = "COURSE_RESULTS_KEY_FD"


class _Records:
    """The ``--course-results`` file (or the grader's pipe), written through references taken
    when it was opened (before any code under test runs), so that replacing ``json.dumps`` later
    changes nothing. With the grader's key, every line carries a sequence number and an HMAC."""

    def __init__(self, path: str) -> None:
        import hashlib
        import hmac

        # /dev/fd/N (the grader's pipe): that descriptor itself; reopening it is not allowed
        # once the graded code runs as a user of its own.
        target: str | int = int(path[len("/dev/fd/"):]) if path.startswith("/dev/fd/") else path
        self._handle = open(target, "a", encoding="utf-8")  # noqa: SIM115
        self._put, self._flush, self._dumps = self._handle.write, self._handle.flush, json.dumps
        self._fstat, self._fd = os.fstat, self._handle.fileno()
        self.identity = self._channel()
        self._mac, self._sha256, self._key, self._seq = hmac.new, hashlib.sha256, b"", 0
        key_fd = os.environ.pop(RESULTS_KEY_FD_ENV, "")
        if key_fd:
            with open(int(key_fd), "rb") as key:  # closes the descriptor: nothing after us reads it
                self._key = key.read()

    def _channel(self) -> tuple[int, int] | None:
        """What the descriptor refers to now (None when it is closed)."""
        try:
            stat = self._fstat(self._fd)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def redirected(self) -> bool:
        """Has the descriptor been closed, or made to point elsewhere, since it was opened?"""
        return self._channel() != self.identity

    def __call__(self, record: dict[str, Any]) -> None:
        if self._key:
            text = self._dumps({**record, "seq": self._seq})
            self._seq += 1
            text = f"{self._mac(self._key, text.encode(), self._sha256).hexdigest()} {text}"
        else:
            text = self._dumps(record)
        self._put(text + "\n")
        self._flush()

    def close(self) -> None:
        self._handle.close()


def _write(config: pytest.Config, record: dict[str, Any]) -> None:
    records = getattr(config, "_course_results", None)
    if records:
        records(record)


def _use_grading_hypothesis_profile(config: pytest.Config) -> None:
    """Grading runs on busy machines: a wall-clock deadline there fails correct code as "flaky".
    Registered before test modules import (their ``@settings`` take unset values from it)."""
    if not config.pluginmanager.has_plugin("hypothesispytest"):
        return  # Hypothesis is off in this run (``-p no:hypothesispytest``): no test uses it
    from hypothesis import HealthCheck, settings

    settings.register_profile("course-grading", deadline=None, database=None, derandomize=True,
                              print_blob=False, suppress_health_check=[HealthCheck.too_slow],
                              phases=_phases_without_explain())
    settings.load_profile("course-grading")


def _phases_without_explain() -> tuple[Any, ...]:
    """Hypothesis's phases less ``explain``: its report points at lines of the libraries the code
    calls (vLLM's ``sampling_params.py``, torch internals), which a student cannot act on."""
    from hypothesis import Phase

    return tuple(phase for phase in Phase if phase.name != "explain")


def _use_course_hypothesis_profile(config: pytest.Config) -> None:
    """Outside grading: the profile Hypothesis chose (``default``, or ``ci`` where a CI variable
    is set) less its ``explain`` phase, unless the person chose one (``--hypothesis-profile``)."""
    if not config.pluginmanager.has_plugin("hypothesispytest") or config.getoption("hypothesis_profile", None):
        return
    from hypothesis import settings

    parent = settings.get_profile(settings.get_current_profile_name())
    settings.register_profile("course", parent=parent, phases=tuple(
        phase for phase in parent.phases if phase in _phases_without_explain()))
    settings.load_profile("course")


# --------------------------------------------------------------------------------------------
# Collection: lab, task, points, hidden; requirement skips; --task filter


def lab_of(item: pytest.Item) -> str | None:
    """The lab folder a test lives in (None for the course's own tests)."""
    path = Path(str(item.path)).resolve()
    if not path.is_relative_to(ROOT):
        return None
    first = path.relative_to(ROOT).parts[0]
    return first if LAB_DIR_PATTERN.match(first) else None


def task_of(item: pytest.Item) -> int | None:
    marker = item.get_closest_marker("task")
    return int(marker.args[0]) if marker and marker.args else None


def points_of(item: pytest.Item) -> float:
    """A test's points. A parametrized test's ``points(N)`` is shared evenly by its cases."""
    if hasattr(item, "_course_points"):
        return item._course_points  # type: ignore[attr-defined]
    marker = item.get_closest_marker("points")
    return float(marker.args[0]) if marker and marker.args else 0.0


def _split_parametrized_points(items: list[pytest.Item]) -> None:
    cases: dict[tuple[str, str], list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker("points") is not None:
            key = (str(item.path), getattr(item, "originalname", item.name))
            cases.setdefault(key, []).append(item)
    for group in cases.values():
        total = points_of(group[0])
        for item in group:
            item._course_points = total / len(group)  # type: ignore[attr-defined]


def requirement_skip_reason(name: str, *, import_it: bool = True) -> str | None:
    """Why a test with requirement marker ``name`` cannot run here, or None when it can.

    With ``import_it=False`` a framework only has to be installed (a quick look, no import:
    importing vLLM or SGLang takes seconds, too long for ``course check``)."""
    if name == "gpu":
        if hardware.detect().has_cuda:
            return None
        return f"{REQUIREMENTS['gpu']}; none is visible to torch here (not gradable on this machine)"
    module = {"llama_cpp": "llama_cpp"}.get(name, name)
    if import_it:
        error = hardware.import_error(module)
    else:
        error = None if hardware.is_installed(module) else f"{module} is not installed"
    if error is None:
        return None
    hint = hardware.INSTALL_HINTS.get(module, "")
    return f"{REQUIREMENTS[name]}: {error}; to get it: {hint} (not gradable on this machine)"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``--task K``, a lab's test file that holds no test of task K is not even imported
    (see ``shared.tasks``: a file whose tasks its text does not state is collected as before)."""
    wanted = set(config.getoption("--task") or [])
    if not wanted or not collection_path.name.startswith("test_") or collection_path.suffix != ".py":
        return None
    try:
        relative = collection_path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    if not (len(relative.parts) > 2 and LAB_DIR_PATTERN.match(relative.parts[0]) and relative.parts[1] == "tests"):
        return None
    from .tasks import file_tasks

    tasks = file_tasks(collection_path)
    return True if tasks is not None and not tasks & wanted else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted_tasks = set(config.getoption("--task"))
    _split_parametrized_points(items)
    kept, deselected = [], []
    for item in items:
        lab = lab_of(item)
        if lab is not None:
            tests_dir = ROOT / lab / "tests"
            in_hidden = (tests_dir / "hidden") in Path(str(item.path)).resolve().parents
            if item.get_closest_marker("hidden") and not in_hidden:
                raise pytest.UsageError(f"{item.nodeid}: hidden tests must live under "
                                        f"{lab}/tests/hidden/ so that the student edition leaves them out")
            if in_hidden:
                item.add_marker(pytest.mark.hidden)
            graded = item.get_closest_marker("points") is not None
            if task_of(item) is None or not (graded or item.get_closest_marker("scaffold")):
                raise pytest.UsageError(f"{item.nodeid}: every lab test needs a task(K) marker and "
                                        "either points(N) or scaffold")
        for name in REQUIREMENTS:
            if item.get_closest_marker(name):
                reason = requirement_skip_reason(name)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
                    item._course_not_gradable = reason  # type: ignore[attr-defined]
                    break
        if wanted_tasks and task_of(item) not in wanted_tasks:
            deselected.append(item)
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed:  # a test file that cannot be imported: the grader must say so, not guess
        lines = [line for line in report.longreprtext.splitlines() if line.strip()]
        _write(collector.config, {"event": "collect_error", "nodeid": report.nodeid,
                                  "message": (lines[-1] if lines else "")[:1000]})
    return report


def timeout_of(item: pytest.Item) -> float:
    """The test's time limit in seconds (its ``timeout`` marker, else the ini ``timeout``)."""
    marker = item.get_closest_marker("timeout")
    if marker and marker.args:
        return float(marker.args[0])
    try:
        return float(item.config.getini("timeout") or 0)
    except (ValueError, TypeError):  # pytest-timeout is not installed
        return 0.0


#: Lab code modules (``labNN_x.src.m`` / ``labNN_x.solution.m``): tests import them lazily.
LAB_CODE_MODULE = re.compile(r"^lab\d\d_[a-z0-9_]+\.(src|solution)(\.|$)")


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        function = getattr(item, "function", None)
        doc = (function.__doc__ or "").strip().splitlines() if function else []
        _write(session.config, {
            "event": "collected", "nodeid": item.nodeid, "lab": lab_of(item),
            "task": task_of(item), "points": points_of(item),
            "hidden": item.get_closest_marker("hidden") is not None,
            "scaffold": item.get_closest_marker("scaffold") is not None,
            "doc": doc[0] if doc else "",
            "not_gradable": getattr(item, "_course_not_gradable", ""),
            "timeout": timeout_of(item),
        })
    if not session.config.option.collectonly:
        _build_fixtures_first(session.items)
    # The grader trusts a collection only if it imported no lab code (tests use lab_module).
    _write(session.config, {"event": "collection_done", "count": len(session.items),
                            "lab_code_imported": sorted(m for m in sys.modules if LAB_CODE_MODULE.match(m))})
    _GUARD.start(session.config)


MODEL_FIXTURES = {"main": {"model_dir", "tokenizer", "model"}, "draft": {"draft_model_dir", "draft_model"}}


def _build_fixtures_first(items: list[pytest.Item]) -> None:
    """Build (or wait for) the fixture models the collected tests use before the first test
    starts, so that neither the build nor another process's build counts against a test's time
    limit. A failure is left for the fixture to raise again, in the test that needs it."""
    from .models import MODEL_ENV, resolve_model

    used = {name for item in items for name in getattr(item, "fixturenames", ())}
    for kind, names in MODEL_FIXTURES.items():
        if used & names and os.environ.get(MODEL_ENV[kind], "fixture") == "fixture":
            with contextlib.suppress(Exception):  # raised again where it can be reported
                resolve_model(None, kind)


# --------------------------------------------------------------------------------------------
# Running: "needs lab01 task 1 first", results lines


def _name_the_needed_task(item: pytest.Item, error: NotImplementedError) -> None:
    """Re-raise another task's NotImplementedError as "needs labNN task K first: ..."."""
    match = NOT_IMPLEMENTED.search(str(error))
    own_lab, own_task = lab_of(item), task_of(item)
    if match and own_lab and own_task is not None:
        lab, task = f"lab{match.group(1)}", int(match.group(2))
        if (lab, task) != (own_lab[:5], own_task):
            raise NotImplementedError(f"needs {lab} task {task} first: {error}") from error


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):  # type: ignore[no-untyped-def]
    try:  # a fixture may call an earlier task's code
        return (yield)
    except NotImplementedError as error:
        _name_the_needed_task(item, error)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
    try:
        return (yield)
    except NotImplementedError as error:
        _name_the_needed_task(item, error)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]):  # type: ignore[no-untyped-def]
    report = yield
    if call.excinfo is not None:
        if call.excinfo.errisinstance(pytest.skip.Exception):
            report.course_message = str(call.excinfo.value)
        else:
            report.course_message = call.excinfo.exconly()[:4000]
    reports = getattr(item, "_course_reports", None)
    if reports is not None:
        reports.append(report)
    return report


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    config = _GUARD.config
    if config is not None:  # the grader's per-test time limit counts from here
        _write(config, {"event": "start", "nodeid": nodeid})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    reports: list[pytest.TestReport] = []
    item._course_reports = reports  # type: ignore[attr-defined]
    _GUARD.check(item.nodeid, before=True)
    result = yield
    _GUARD.check(item.nodeid)
    outcome, message = "passed", ""
    for report in reports:
        # report.outcome itself, not the report's properties: those could be replaced.
        if report.outcome == "failed":
            outcome = "failed" if report.when == "call" else "error"
            message = getattr(report, "course_message", "") or report.longreprtext[-4000:]
            break
        if report.outcome == "skipped":
            outcome = "skipped"
            message = getattr(report, "course_message", "")
            if not message and isinstance(report.longrepr, tuple):
                message = str(report.longrepr[2]).removeprefix("Skipped: ")
            if hasattr(report, "wasxfail"):
                message = f"xfail: {report.wasxfail or message}"
    _GUARD.write(item.config, {"event": "result", "nodeid": item.nodeid, "outcome": outcome,
                               "message": message,
                               "duration": round(sum(r.duration for r in reports), 3)})
    return result


def pytest_sessionfinish(session: pytest.Session) -> None:
    _GUARD.check("the end of the session")


# --------------------------------------------------------------------------------------------
# The guard: what grading relies on, checked after every test


class _Guard:
    """References, taken when this plugin is imported (before any code under test runs), to what
    an honest result relies on: pytest's report classes and runner, ``json.dumps``, this module's
    own functions, and (from the end of collection) the plugins and hook implementations
    registered. After each test, anything replaced is written as a ``tamper`` record through the
    original writer. Code in the same process can always get around a check; this one makes the
    ways seen so far (patching a report property or this module's writer) visible."""

    def __init__(self) -> None:
        self.config: pytest.Config | None = None
        self._originals: dict[str, tuple[Any, str, Any]] = {}
        self._hooks: dict[str, list[Any]] = {}
        self._plugins: set[int] = set()
        self._reported: set[str] = set()
        self._write = _write

    def watch(self, label: str, owner: Any, name: str) -> None:
        value = vars(owner).get(name) if hasattr(owner, "__dict__") else getattr(owner, name, None)
        self._originals[label] = (owner, name, value, _codes(value))

    def start(self, config: pytest.Config) -> None:
        """Called at the end of collection: from here on no plugin or hook may appear, and the
        oracles the tests use are the libraries' own (no code under test has run yet)."""
        self.config = config
        self._plugins = {id(plugin) for plugin in config.pluginmanager.get_plugins()}
        self._hooks = {name: [(impl.function, _codes(impl.function))
                              for impl in getattr(config.hook, name).get_hookimpls()] for name in GUARDED_HOOKS}
        for module_name, names in ORACLES:
            if module_name.partition(".")[0] in sys.modules:  # a library the tests imported
                try:
                    module = __import__(module_name, fromlist=["_"])
                except ImportError:
                    continue
                for name in names:
                    owner, _, attribute = f"{module_name}.{name}".rpartition(".")
                    target = module if owner == module_name else _resolve(owner)
                    if target is not None and hasattr(target, attribute):
                        self.watch(f"{owner}.{attribute}", target, attribute)

    def changed(self) -> list[str]:
        found = []
        for label, (owner, name, value, codes) in self._originals.items():
            now = vars(owner).get(name) if hasattr(owner, "__dict__") else getattr(owner, name, None)
            if now is not value or _codes(now) != codes:
                found.append(label)
        if self.config is not None:
            records = getattr(self.config, "_course_results", None)
            if records is not None and records.redirected():
                found.append("the results descriptor (closed or redirected)")
            if {id(plugin) for plugin in self.config.pluginmanager.get_plugins()} != self._plugins:
                found.append("the registered pytest plugins")
            for name, functions in self._hooks.items():
                now = [(impl.function, _codes(impl.function))
                       for impl in getattr(self.config.hook, name).get_hookimpls()]
                if len(now) != len(functions) or any(
                        a is not b or ca != cb for (a, ca), (b, cb) in zip(now, functions, strict=True)):
                    found.append(f"the implementations of the {name} hook")
        return found

    def check(self, during: str, *, before: bool = False) -> None:
        """Write a ``tamper`` record for anything replaced since the last check (``before``: the
        check as test ``during`` starts, which sees what happened between tests)."""
        if self.config is None:
            return
        new = [label for label in self.changed() if label not in self._reported]
        if new:
            self._reported.update(new)
            self.write(self.config, {"event": "tamper", "nodeid": during, "changed": new,
                                     **({"when": "before"} if before else {})})

    def write(self, config: pytest.Config, record: dict[str, Any]) -> None:
        self._write(config, record)


GUARDED_HOOKS = ("pytest_runtest_protocol", "pytest_runtest_makereport", "pytest_runtest_logreport",
                 "pytest_runtest_call", "pytest_pyfunc_call", "pytest_report_teststatus", "pytest_runtest_setup",
                 "pytest_runtest_teardown", "pytest_runtest_logstart", "pytest_runtest_logfinish")
#: The oracles tests judge with, watched from the end of collection where their library is loaded.
ORACLES = (
    ("pytest", ("raises", "approx", "warns", "fail", "skip")),
    ("_pytest.python_api", ("raises", "approx", "RaisesContext.__exit__", "ApproxScalar.__eq__",
                            "ApproxMapping.__eq__", "ApproxSequenceLike.__eq__")),
    ("_pytest.raises", ("raises", "RaisesExc.__exit__", "RaisesExc.matches")),
    ("torch", ("equal", "allclose", "isclose", "Tensor.__eq__", "Tensor.equal", "Tensor.tolist", "Tensor.item")),
    ("torch.testing", ("assert_close",)),
    ("numpy", ("array_equal", "allclose", "isclose")),
    ("numpy.testing", ("assert_allclose", "assert_array_equal", "assert_equal", "assert_array_almost_equal",
                       "assert_almost_equal")),
)


def _resolve(dotted: str) -> Any:
    """The object at ``dotted`` (a module, then attributes), or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is not None:
            value = module
            for part in parts[cut:]:
                value = getattr(value, part, None)
            return value
    return None


def _codes(value: Any) -> tuple[Any, ...]:
    """The code objects behind ``value`` (a function, a property's accessors, a method of a
    class or staticmethod): replacing one changes what runs without changing the identity."""
    parts = [value.fget, value.fset] if isinstance(value, property) else [getattr(value, "__func__", value)]
    return tuple(getattr(part, "__code__", None) for part in parts)


def _make_guard() -> _Guard:
    from _pytest import outcomes, python, reports, runner, skipping

    guard = _Guard()
    watched = (
        (reports.BaseReport, ("passed", "failed", "skipped", "longreprtext")),
        (reports.TestReport, ("__init__", "from_item_and_call")),
        (runner.CallInfo, ("from_call",)),
        (runner, ("call_and_report", "runtestprotocol", "pytest_runtest_makereport", "call_runtest_hook",
                  "check_interactive_exception")),
        (skipping, ("pytest_runtest_makereport", "pytest_runtest_call")),
        (python, ("pytest_pyfunc_call",)),
        (python.Function, ("runtest",)),
        (outcomes, ("skip", "fail", "xfail", "exit")),
        (json, ("dumps",)),
        (_Records, ("__init__", "__call__")),
        (_Guard, ("check", "changed", "write")),
        (sys.modules[__name__], ("_write", "_name_the_needed_task", "pytest_runtest_protocol",
                                 "pytest_runtest_makereport", "pytest_runtest_call", "pytest_runtest_setup",
                                 "pytest_runtest_logstart")),
    )
    for owner, names in watched:
        where = owner.__name__ if isinstance(owner, type(sys)) else f"{owner.__module__}.{owner.__qualname__}"
        for name in names:
            guard.watch(f"{where}.{name}", owner, name)
    return guard


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> str:
    """The device the model fixtures live on (``--device``; default cpu)."""
    return hardware.resolve_device(pytestconfig.getoption("--device"))


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The main model folder: ``--model`` / ``$COURSE_MODEL``, else the fixture (built if needed)."""
    from .models import resolve_model

    return resolve_model(None, "main")


@pytest.fixture(scope="session")
def draft_model_dir() -> Path:
    """The draft model folder for speculative decoding (``$COURSE_DRAFT_MODEL`` or the fixture)."""
    from .models import resolve_model

    return resolve_model(None, "draft")


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def _load(path: Path, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    return model.eval()


@pytest.fixture(scope="session")
def model(model_dir: Path, device: str) -> Any:
    """The main model in float32, in eval mode. Tests must not change its weights."""
    return _load(model_dir, device)


@pytest.fixture(scope="session")
def draft_model(draft_model_dir: Path, device: str) -> Any:
    return _load(draft_model_dir, device)


# Last, once every function above exists: the references the guard compares against.
_GUARD = _make_guard()
_GUARD.watch(f"{__name__}._GUARD", sys.modules[__name__], "_GUARD")
