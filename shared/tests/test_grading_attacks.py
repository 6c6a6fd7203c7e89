"""Issues 7 and 22's tables, one test per row: each dishonest submission gets 0 (or, where its
code patched the test process, is detected and its score withheld), while the honest one keeps
full marks, and so does an honest one whose code crashes in one test.

All on the synthetic ``lab01_demo`` (7 points, 5 graded tests, one hidden): a grading takes a few
seconds. Under bubblewrap (CI installs it), or as a user of its own (root, with a Python other
users can run), the attacks on files are prevented; otherwise the grader can only detect them,
and the tests check whichever applies here.
"""

from __future__ import annotations

import shutil
import sysconfig
import uuid
from pathlib import Path

import pytest

from shared.grading import GradeReport, LabResult, grade
from shared.grading import run as grading_run
from shared.grading.gradescope import REDACTED, validate
from shared.grading.limits import tree_limit_problem
from shared.grading.run import Records
from shared.grading.sandbox import grading_sandbox_kind, open_sandbox

from .helpers import DEMO_LAB, DEMO_SOLUTION, MAIN, make_demo_course, make_submission, write_files

pytestmark = pytest.mark.usefixtures("fast_children")

FULL = 7.0
SANDBOX = grading_sandbox_kind()  # "bubblewrap", "user" (a user id of its own only) or "none"
PREVENTED = SANDBOX != "none"  # the graded code cannot write the copy, the course or site-packages
TREE_PROBLEM = tree_limit_problem()  # why no cgroup bounds the graded code's tree here ("": one does)
ADD_TEST = f"{DEMO_LAB}/tests/test_calc.py::test_add"


def _grade(submission: Path, root: Path, **kwargs) -> tuple[GradeReport, LabResult]:
    report = grade(submission=submission, root=root, labs=[DEMO_LAB], **kwargs)
    [lab] = report.labs
    assert lab.max_score == FULL  # the denominator is the course's, whatever the submission did
    return report, lab


def _honest_gets_full_marks(root: Path, folder: Path) -> None:
    report, lab = _grade(make_submission(folder, DEMO_SOLUTION), root)
    assert (report.score, lab.withheld, lab.integrity) == (FULL, "", [])


def _with_prelude(prelude: str, solution: str = DEMO_SOLUTION) -> str:
    """The demo solution with ``prelude`` run when the module is imported."""
    return solution.replace("import os\n", "import os\n" + prelude + "\n", 1)


def test_reexporting_the_solution_gets_nothing(demo_course: Path, tmp_path: Path) -> None:
    reexport = make_submission(tmp_path / "reexport", "from lab01_demo.solution.calc import *  # noqa\n")
    report, lab = _grade(reexport, demo_course)
    assert report.score == 0
    assert all("No module named 'lab01_demo.solution'" in t.message for t in lab.graded()), lab.tests
    assert any("imports a solution module" in f.what for f in lab.integrity)

    linked = tmp_path / "linked"
    (linked / DEMO_LAB).mkdir(parents=True)
    (linked / DEMO_LAB / "src").symlink_to(demo_course / DEMO_LAB / "solution")
    report, lab = _grade(linked, demo_course)
    assert report.score == 0
    assert f"{DEMO_LAB}/src is a symbolic link: refused (submit the files themselves)" in report.notes

    one_file = make_submission(tmp_path / "one_file", "")
    (one_file / DEMO_LAB / "src" / "calc.py").unlink()
    (one_file / DEMO_LAB / "src" / "calc.py").symlink_to(demo_course / DEMO_LAB / "solution" / "calc.py")
    report, _ = _grade(one_file, demo_course)
    assert report.score == 0 and f"{DEMO_LAB}/src/calc.py is a symbolic link: refused" in report.notes
    _honest_gets_full_marks(demo_course, tmp_path / "honest")


@pytest.mark.skipif(not PREVENTED, reason="only a user of its own (the grader running as root, with a Python "
                                          "every user can run) keeps the instructor's course unreadable")
def test_importing_the_instructors_course_by_its_path_fails(demo_course: Path, tmp_path: Path) -> None:
    stolen = str(demo_course / DEMO_LAB / "solution" / "calc.py")
    steal = make_submission(tmp_path / "steal", (
        "import importlib.util\n\n"
        f"_spec = importlib.util.spec_from_file_location('stolen', {stolen!r})\n"
        "_module = importlib.util.module_from_spec(_spec)\n_spec.loader.exec_module(_module)\n"
        "add, scale, sum_list, where = _module.add, _module.scale, _module.sum_list, _module.where\n"))
    report, lab = _grade(steal, demo_course)
    assert report.score == 0
    assert all("Permission denied" in t.message or "No such file or directory" in t.message
               for t in lab.graded()), [t.message for t in lab.graded()]


def test_skipping_or_xfailing_is_a_failure_not_ungradable(demo_course: Path, tmp_path: Path) -> None:
    for how in ("pytest.skip('needs an NVIDIA GPU (CUDA); none is visible to torch here "
                "(not gradable on this machine)')",
                "pytest.xfail('needs an NVIDIA GPU (CUDA) (not gradable on this machine)')"):
        skipping = DEMO_SOLUTION.replace("import os\n", "import os\n\nimport pytest\n").replace(
            "    total = a + b\n", f"    {how}\n").replace("    product = x * factor\n", f"    {how}\n")
        report, lab = _grade(make_submission(tmp_path / how[7:11], skipping), demo_course)
        assert report.score == 0 and report.not_gradable_points == 0
        assert {t.outcome for t in lab.graded()} == {"failed"}
        assert all(t.message.startswith("skipped while grading, which counts as a failure") for t in lab.graded())
        assert any(f.what == "imports pytest (the test machinery)" for f in lab.integrity)
        assert any("skipped for a missing requirement while grading, though the grader's collection found it met"
                   in note for note in lab.notes)  # for the instructor: a fake, or a sandbox that lacks it

    # Task 1 solved, task 2 skipped: 4 of 7, not "4 of 4".
    half = DEMO_SOLUTION.replace("import os\n", "import os\n\nimport pytest\n").replace(
        "    product = x * factor\n", "    pytest.skip('needs a GPU')\n")
    report, lab = _grade(make_submission(tmp_path / "half", half), demo_course)
    assert (report.score, report.max_score) == (4.0, FULL)


FORGE_AT_EXIT = '''
import atexit as _atexit
import json as _json
import os as _os
import sys as _sys

_FILE = next(a.split("=", 1)[1] for a in _sys.argv if a.startswith("--course-results="))
_IDS = [a for a in _sys.argv if "::" in a]


# The grader's pipe (/dev/fd/N): a copy of its descriptor, taken now (the plugin closes its own
# at the end of the session); a file: its path.
_TARGET = _os.dup(int(_FILE[8:])) if _FILE.startswith("/dev/fd/") else _FILE


def _forge():
    with open(_TARGET, "a") as handle:
        for nodeid in _IDS:
            handle.write(_json.dumps({"event": "start", "nodeid": nodeid}) + "\\n")
            handle.write(_json.dumps({"event": "result", "nodeid": nodeid, "outcome": "passed",
                                      "message": "", "duration": 0.0}) + "\\n")
        handle.write(_json.dumps({"event": "collected", "nodeid": "lab01_demo/tests/test_calc.py::test_free",
                                  "task": 1, "points": 1000.0, "hidden": False, "scaffold": False}) + "\\n")


_atexit.register(_forge)
'''


def test_forged_results_records_count_for_nothing(demo_course: Path, tmp_path: Path) -> None:
    # A skeleton (nothing solved) that appends "passed" records, and a 1000-point test, at exit.
    skeleton = (demo_course / DEMO_LAB / "src" / "calc.py").read_text()
    report, lab = _grade(make_submission(tmp_path / "forger", _with_prelude(FORGE_AT_EXIT, skeleton)), demo_course)
    assert lab.earned == 0 and report.score == 0  # not a single forged record counted
    assert lab.withheld
    found = " ".join(f.what for f in lab.integrity)
    assert "a record the course's plugin did not write" in found  # every forged line, unsigned
    assert "reads the command line (sys.argv)" in found and "imports atexit (runs code after the tests)" in found
    _honest_gets_full_marks(demo_course, tmp_path / "honest")


def test_records_count_once_only_for_known_tests_in_order() -> None:
    records = Records(points={"a": 1.0, "b": 2.0}, asked={"a", "b"})
    for line in ['{"event": "result", "nodeid": "b", "outcome": "passed"}',  # b never started
                 '{"event": "start", "nodeid": "a"}', '{"event": "start", "nodeid": "b"}',  # a still running
                 '{"event": "result", "nodeid": "a", "outcome": "failed"}',
                 '{"event": "result", "nodeid": "a", "outcome": "passed"}',
                 '{"event": "start", "nodeid": "z"}', '{"event": "oops", "nodeid": "a"}', "not json"]:
        records.feed(line.encode())
    assert records.results == {"a": {"event": "result", "nodeid": "a", "outcome": "failed"}}  # the first, in order
    assert records.anomalies == [
        "a result for b ('passed'), which was not running", "a start record for b out of order",
        "a second result for a ('passed')", "a start record for 'z', a test this run was not asked to run",
        "an unknown 'oops' record", "an unreadable record: b'not json'"]


@pytest.mark.parametrize("patch", [
    "from _pytest.reports import BaseReport\nBaseReport.failed = property(lambda self: False)",
    "import shared.pytest_plugin as _plugin\n_real = _plugin._write\n"
    "def _write(config, record):\n    if record.get('event') == 'result':\n        record['outcome'] = 'passed'\n"
    "    _real(config, record)\n_plugin._write = _write",
], ids=["BaseReport.failed", "pytest_plugin._write"])
def test_patching_the_test_process_is_detected_and_withheld(demo_course: Path, tmp_path: Path, patch: str) -> None:
    skeleton = (demo_course / DEMO_LAB / "src" / "calc.py").read_text()
    report, lab = _grade(make_submission(tmp_path / "patcher", _with_prelude(patch, skeleton)), demo_course)
    assert report.score == 0 and lab.earned == 0 and lab.withheld
    runtime = [f.what for f in lab.integrity if f.kind == "runtime"]
    assert runtime and runtime[0].startswith("the test process was patched during "), runtime
    assert "BaseReport.failed" in runtime[0] or "pytest_plugin._write" in runtime[0]
    scope = report.to_gradescope()
    assert validate(scope) == [] and scope["score"] == 0
    assert "withheld for review by the instructor" in scope["output"]
    _honest_gets_full_marks(demo_course, tmp_path / "honest")


def test_rewriting_the_tests_then_exiting_changes_nothing(demo_course: Path, tmp_path: Path) -> None:
    rewrite = '''
import pathlib as _pathlib

_tests = _pathlib.Path(__file__).resolve().parents[1] / "tests"
try:
    for _path in _tests.rglob("test_*.py"):
        _path.write_text("import pytest\\n\\n@pytest.mark.task(1)\\n@pytest.mark.points(1)\\n"
                         "def test_add():\\n    pass\\n")
except OSError:
    pass
os._exit(0)
'''
    report, lab = _grade(make_submission(tmp_path / "rewriter", _with_prelude(rewrite)), demo_course)
    assert report.score == 0
    if PREVENTED:  # the copy is read-only to the graded code: every test crashed, none changed
        assert {t.outcome for t in lab.graded()} == {"error"} and not lab.withheld
    else:  # the graded code could write the copy: the grader saw it, and withheld the score
        assert lab.withheld and any("changed the grading copy" in f.what for f in lab.integrity)
    _honest_gets_full_marks(demo_course, tmp_path / "honest")


def test_a_submission_cannot_reach_the_course_or_the_virtual_environment(tmp_path: Path) -> None:
    demo_course = make_demo_course(tmp_path / "course")  # its own: the attack may succeed here
    marker = f"zz_course_grading_attack_{uuid.uuid4().hex[:8]}.pth"
    pth = Path(sysconfig.get_paths()["purelib"]) / marker
    customize = Path(sysconfig.get_paths()["purelib"]) / "sitecustomize.py"  # run by every later Python
    customize_before = customize.read_bytes() if customize.exists() else None
    victim = demo_course / DEMO_LAB / "tests" / "test_calc.py"
    original = victim.read_text()
    attack = f'''
import sys as _sys
import sysconfig as _sysconfig

for _path, _text in (({str(pth)!r}, "# a line run by every later Python\\n"),
                     ({str(customize)!r}, "# code run by every later Python\\n"),
                     ({str(victim)!r}, "def test_nothing():\\n    pass\\n")):
    try:
        with open(_path, "w") as _handle:
            _handle.write(_text)
    except OSError:
        pass
'''
    try:
        report, lab = _grade(make_submission(tmp_path / "attacker", _with_prelude(attack)), demo_course)
        if PREVENTED:  # prevented: no file was written, and the submission kept its points
            assert not pth.exists() and victim.read_text() == original
            assert (customize.read_bytes() if customize.exists() else None) == customize_before
            assert report.score == FULL
        else:  # detected: the score is withheld
            assert lab.withheld and report.score == 0
            assert any("changed outside the sandbox" in f.what for f in lab.integrity)
        assert any(f.what.startswith("names a .pth file") for f in lab.integrity)
    finally:
        pth.unlink(missing_ok=True)
        if customize_before is None:
            customize.unlink(missing_ok=True)
        else:
            customize.write_bytes(customize_before)
        victim.write_text(original)
    _honest_gets_full_marks(demo_course, tmp_path / "honest")


@pytest.fixture(scope="module")
def two_module_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo lab plus a second module and test file (task 2), for crashes at import."""
    tests = "\n\n".join(
        f"@pytest.mark.task(2)\n@pytest.mark.points(1)\ndef test_other_{i}():\n    assert other.double({i}) == {2 * i}"
        for i in range(4))
    return make_demo_course(tmp_path_factory.mktemp("two") / "course", {
        f"{DEMO_LAB}/solution/other.py": ('def double(x: int) -> int:\n    """Twice x."""\n'
                                          "    # BEGIN SOLUTION task 2: double it.\n    return 2 * x\n"
                                          "    # END SOLUTION\n"),
        f"{DEMO_LAB}/tests/test_other.py": ("import pytest\n\nfrom shared.impl import lab_module\n\n"
                                            f"other = lab_module('{DEMO_LAB}', 'other')\n\n\n{tests}\n"),
        f"{DEMO_LAB}/README.md": "# Lab 1: demo\n\n## Task 1 — Adding (4 points)\n\n## Task 2 — Scaling (7 points)\n",
    })


def test_crashing_at_import_costs_the_tests_that_import_it_not_the_lab(two_module_course: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grading_run, "CRASHES_BEFORE_SPLIT", 2)
    submission = make_submission(tmp_path / "crasher", "import os\nos._exit(3)\n",
                                 {f"{DEMO_LAB}/src/other.py": "def double(x):\n    return 2 * x\n"})
    report = grade(submission=submission, root=two_module_course, labs=[DEMO_LAB])
    [lab] = report.labs
    outcomes = {t.nodeid.split("::")[1]: (t.outcome, t.message.split("\n")[0]) for t in lab.tests}
    for name in ("test_other_0", "test_other_1", "test_other_2", "test_other_3"):
        assert outcomes[name] == ("passed", "")
    crashed = [name for name, (outcome, _) in outcomes.items() if outcome != "passed"]
    assert len(crashed) == 6  # every test importing calc, each with the reason
    for name in crashed:
        assert outcomes[name] == ("error", "the test run died in this test: the test process exited with code 3. "
                                           "Look for an infinite loop, a crash, os._exit or sys.exit in your code.")
    assert (report.score, report.max_score) == (4.0, 11.0)
    assert any("one test file per process" in note for note in lab.notes)


def test_a_process_left_behind_is_ended(demo_course: Path, tmp_path: Path) -> None:
    tag = f"course-grading-leftover-{uuid.uuid4().hex[:8]}"
    escape = "start_new_session=True" if PREVENTED else "start_new_session=False"
    leave = f'''
import subprocess as _subprocess
import sys as _sys

_subprocess.Popen([_sys.executable, "-c", "import time; time.sleep(600)  # {tag}"], {escape},
                  stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL)
'''
    report, _ = _grade(make_submission(tmp_path / "leaver", _with_prelude(leave)), demo_course)
    assert report.score == FULL  # leaving a process behind earns nothing, and costs nothing here
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if tag in cmdline.read_text():
                alive.append(cmdline.parent.name)
        except OSError:
            continue
    assert alive == []


def test_hidden_test_text_in_a_visible_output_is_redacted(demo_course: Path, tmp_path: Path) -> None:
    leak = '''
import pathlib as _pathlib

_HIDDEN = "\\n".join(p.read_text() for p in (_pathlib.Path(__file__).resolve().parents[1] / "tests").rglob("*.py")
                     if "hidden" in p.parts)
'''
    leaking = _with_prelude(leak).replace("    total = a + b\n", "    raise AssertionError(_HIDDEN)\n")
    report, lab = _grade(make_submission(tmp_path / "leaker", leaking), demo_course)
    [visible] = [e for e in report.to_gradescope()["tests"] if e["extra_data"]["nodeid"] == ADD_TEST]
    assert visible["visibility"] == "visible"
    assert "assert calc.add(10**12, 1) == 10**12 + 1" not in visible["output"] and REDACTED in visible["output"]
    assert "assert calc.add(10**12, 1) == 10**12 + 1" in next(t.message for t in lab.tests if t.nodeid == ADD_TEST)


def test_a_clean_submission_has_an_empty_integrity_report(demo_course: Path, tmp_path: Path) -> None:
    from shared.grading.integrity import scan
    from shared.paths import lab_dirs

    _honest_gets_full_marks(demo_course, tmp_path / "honest")
    for lab in lab_dirs(MAIN):  # every reference solution, less what its skeleton gives
        if (lab / "solution").is_dir():
            assert scan(lab / "solution", f"{lab.name}/solution", lab / "src") == [], lab.name
    write_files(tmp_path / "bad", {"m.py": (
        "import os, sys, atexit, ctypes\nimport pytest\nfrom _pytest import runner\nimport shared.pytest_plugin\n"
        "from lab01_x.solution import m\nos._exit(0)\nx = sys.argv\nopen('/proc/self/status')\n"
        "open(os.path.join(sys.prefix, 'lib', 'x.pth'), 'w')\nfrom pathlib import Path\n"
        "(Path(__file__).parent / 'y').write_text('z')\n")})
    whats = {f.what for f in scan(tmp_path / "bad", "bad")}
    for expected in ("imports pytest (the test machinery)", "imports pytest's internals",
                     "imports the course's pytest plugin", "imports a solution module (lab01_x.solution)",
                     "calls os._exit (ends the test process without a report)", "reads the command line (sys.argv)",
                     "names /proc", "imports atexit (runs code after the tests)", "imports ctypes (raw memory access)",
                     "names a .pth file (code run at every interpreter start)"):
        assert expected in whats, (expected, whats)
    assert any(w.startswith("writes to ") and "__file__" in w for w in whats)


# --------------------------------------------------------------------------------------------
# Issue 22's table: each row a dishonest submission (on the skeleton, which earns 0), plus the
# honest code the grader must not flag.


def _skeleton(course: Path) -> str:
    return (course / DEMO_LAB / "src" / "calc.py").read_text()


def _runtime_findings(lab: LabResult) -> str:
    return " | ".join(f.what for f in lab.integrity if f.kind == "runtime")


WRITER_CODE = '''
import shared.pytest_plugin as _plugin


def _every_result_passed(self, record):
    if record.get("event") == "result":
        record = dict(record, outcome="passed", message="")
    if self._key:
        text = self._dumps(dict(record, seq=self._seq))
        self._seq += 1
        text = self._mac(self._key, text.encode(), self._sha256).hexdigest() + " " + text
    else:
        text = self._dumps(record)
    self._put(text + "\\n")
    self._flush()


_plugin._Records.__call__.__code__ = _every_result_passed.__code__
'''

PYFUNC_CALL_CODE = '''
import _pytest.python as _python


def _pass_without_running(pyfuncitem):
    return True


_python.pytest_pyfunc_call.__code__ = _pass_without_running.__code__
'''


@pytest.mark.parametrize(("patch", "replaced"), [
    (WRITER_CODE, "shared.pytest_plugin._Records.__call__"),
    (PYFUNC_CALL_CODE, "_pytest.python.pytest_pyfunc_call"),
], ids=["the record writer's __code__", "pytest_pyfunc_call's __code__"])
def test_replacing_the_code_of_a_function_is_withheld(demo_course: Path, tmp_path: Path, patch: str,
                                                      replaced: str) -> None:
    """The function objects stay the same; their code objects do not: the guard compares both."""
    report, lab = _grade(make_submission(tmp_path / "patcher", _with_prelude(patch, _skeleton(demo_course))),
                         demo_course)
    assert report.score == 0 and lab.withheld
    assert f"replaced {replaced}" in _runtime_findings(lab) or replaced in _runtime_findings(lab), lab.integrity


REDIRECT_AND_FORGE = '''
import json as _json
import sys as _sys

_where = next(a for a in _sys.argv if a.startswith("--course-results=")).split("=", 1)[1]
if _where.startswith("/dev/fd/"):  # the grader's pipe: keep a copy, silence the plugin's own
    _fd = int(_where[len("/dev/fd/"):])
    _forged = os.dup(_fd)
    os.dup2(os.open(os.devnull, os.O_WRONLY), _fd)
else:  # a results file
    _forged = os.open(_where, os.O_WRONLY | os.O_APPEND)
for _id in [a for a in _sys.argv if "::" in a]:
    for _record in ({"event": "start", "nodeid": _id},
                    {"event": "result", "nodeid": _id, "outcome": "passed", "message": "", "duration": 0.0}):
        os.write(_forged, (_json.dumps(_record) + "\\n").encode())
os._exit(0)
'''


def test_redirecting_the_results_descriptor_and_forging_records_is_withheld(demo_course: Path,
                                                                            tmp_path: Path) -> None:
    forger = make_submission(tmp_path / "forger", _with_prelude(REDIRECT_AND_FORGE, _skeleton(demo_course)))
    report, lab = _grade(forger, demo_course)
    assert report.score == 0 and lab.earned == 0 and lab.withheld
    assert "a record the course's plugin did not write" in _runtime_findings(lab)


ORACLE_TESTS = '''
import numpy as np
import pytest
import torch

from shared.impl import lab_module

calc = lab_module("lab01_demo", "calc")


@pytest.mark.task(2)
@pytest.mark.points(1)
def test_scale_tensors():
    assert torch.equal(torch.tensor([calc.scale(2, 3)]), torch.tensor([6]))
    torch.testing.assert_close(torch.tensor([float(calc.scale(1, 2))]), torch.tensor([2.0]))


@pytest.mark.task(2)
@pytest.mark.points(1)
def test_scale_arrays():
    np.testing.assert_array_equal(np.array([calc.scale(2, 2)]), np.array([4]))


@pytest.mark.task(2)
@pytest.mark.points(1)
def test_scale_refuses_a_string_times_none():
    with pytest.raises(TypeError):
        calc.scale("a", None)
'''

PATCH_ORACLES = '''
import contextlib as _contextlib

import numpy as _np
import pytest as _pytest
import torch as _torch

_torch.equal = lambda *args, **kwargs: True
_torch.testing.assert_close = lambda *args, **kwargs: None
_np.testing.assert_array_equal = lambda *args, **kwargs: None
_pytest.raises = lambda *args, **kwargs: _contextlib.suppress(BaseException)
'''


@pytest.fixture(scope="module")
def oracle_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo lab plus tests judged by torch, numpy.testing and pytest.raises (task 2: 6 points)."""
    return make_demo_course(tmp_path_factory.mktemp("oracles") / "course", {
        f"{DEMO_LAB}/tests/test_oracles.py": ORACLE_TESTS,
        f"{DEMO_LAB}/README.md": "# Lab 1: demo\n\n## Task 1 — Adding (4 points)\n\n## Task 2 — Scaling (6 points)\n",
    })


def test_patching_the_oracles_is_withheld(oracle_course: Path, tmp_path: Path) -> None:
    cheat = _with_prelude(PATCH_ORACLES, _skeleton(oracle_course)).replace(
        '    raise NotImplementedError("lab01 task 2', '    return 0\n    raise NotImplementedError("lab01 task 2')
    report = grade(submission=make_submission(tmp_path / "cheat", cheat), root=oracle_course, labs=[DEMO_LAB])
    [lab] = report.labs
    assert report.score == 0 and lab.withheld
    found = _runtime_findings(lab)
    for oracle in ("torch.equal", "torch.testing.assert_close", "numpy.testing.assert_array_equal", "pytest.raises"):
        assert oracle in found, (oracle, found)
    # The honest solution, judged by the same oracles, is not flagged.
    report = grade(submission=make_submission(tmp_path / "honest", DEMO_SOLUTION), root=oracle_course, labs=[DEMO_LAB])
    [lab] = report.labs
    assert (report.score, report.max_score, lab.withheld, lab.integrity) == (10.0, 10.0, "", [])


def test_the_environment_does_not_tell_the_graded_code_it_is_graded(demo_course: Path, tmp_path: Path) -> None:
    """Code that solves task 1 only when it believes it is graded (by ``$USER`` or ``$LOGNAME``,
    and under bubblewrap by ``$HOME``, ``$TMPDIR`` or cache folders, as ``course test`` would not
    show them) earns nothing."""
    import os

    watched = ("USER", "LOGNAME") + (("HOME", "TMPDIR", "XDG_CACHE_HOME", "HF_HOME", "COURSE_CACHE_DIR")
                                     if SANDBOX == "bubblewrap" else ())
    detect = (f"_GRADED = tuple(os.environ.get(name) for name in {watched!r}) != "
              f"{tuple(os.environ.get(name) for name in watched)!r}\n")
    cheat = _with_prelude(detect, _skeleton(demo_course)).replace(
        '    raise NotImplementedError("lab01 task 1', '    if _GRADED:\n        return a + b\n'
        '    raise NotImplementedError("lab01 task 1')
    report, lab = _grade(make_submission(tmp_path / "detector", cheat), demo_course)
    assert report.score == 0, [(t.nodeid, t.outcome) for t in lab.graded()]


def _readable_folder() -> Path:
    """A folder every user may read, outside pytest's own (which only its user may enter)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="another-checkout-"))
    folder.chmod(0o755)
    return folder


def test_another_checkout_on_the_machine_is_out_of_reach(demo_course: Path, tmp_path: Path) -> None:
    other = _readable_folder()
    try:
        shutil.copytree(demo_course / DEMO_LAB, other / DEMO_LAB)
        for path in [other, *other.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        steal = (f"import importlib as _importlib\n\nimport {DEMO_LAB} as _package\n\n"
                 f"_package.__path__.append({str(other / DEMO_LAB)!r})\n"
                 f"_stolen = _importlib.import_module('{DEMO_LAB}.' + 'sol' + 'ution.calc')\n"
                 "add, scale = _stolen.add, _stolen.scale\n")
        report, lab = _grade(make_submission(tmp_path / "thief", _skeleton(demo_course) + "\n" + steal), demo_course)
        assert report.score == 0, [(t.nodeid, t.outcome, t.message[:200]) for t in lab.graded()]
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_another_submission_graded_at_the_same_time_is_out_of_reach(demo_course: Path, tmp_path: Path) -> None:
    from shared.grading import prepare

    steal = '''
import glob as _glob
import importlib.util as _util

for _path in _glob.glob(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4, "*", "course", "lab01_demo",
                                     "src", "calc.py")):
    try:
        _text = open(_path).read()
    except OSError:
        continue
    if "product = x * factor" in _text and "_glob" not in _text:
        _spec = _util.spec_from_file_location("other_submission", _path)
        _other = _util.module_from_spec(_spec)
        _spec.loader.exec_module(_other)
        add, scale = _other.add, _other.scale
'''
    with open_sandbox(demo_course) as other:  # another grading, its copy holding a full solution
        prepare.build_copy(demo_course, other.course)
        (other.course / DEMO_LAB / "src" / "calc.py").write_text(DEMO_SOLUTION)
        prepare.make_readable(other.course, other.uid if other.kind == "user" else None)
        report, lab = _grade(make_submission(tmp_path / "thief", _skeleton(demo_course) + steal), demo_course)
    assert report.score == 0, [(t.nodeid, t.outcome, t.message[:200]) for t in lab.graded()]


def test_planted_symbolic_links_are_never_followed(demo_course: Path, tmp_path: Path) -> None:
    """The graded code links every name the grader's files could have (records, output) to a
    file only root may read, and crashes so that a new child starts: nothing is followed, changed
    or shown."""
    victim = tmp_path / "root-only.txt"
    victim.write_text("TOP-SECRET-LINE\n")
    victim.chmod(0o600)
    before = victim.stat()
    plant = f'''
from pathlib import Path as _Path

for _folder in {{_Path(os.environ["HOME"]).parent / "records", _Path(os.environ.get("TMPDIR", "/tmp"))}}:
    for _i in range(1, 8):
        for _suffix in (".jsonl", ".out"):
            try:
                os.symlink({str(victim)!r}, _folder / f"lab01_demo-{{_i}}{{_suffix}}")
            except OSError:
                pass
os._exit(3)
'''
    report, _ = _grade(make_submission(tmp_path / "planter", _with_prelude(plant, _skeleton(demo_course))),
                       demo_course)
    after = victim.stat()
    assert victim.read_text() == "TOP-SECRET-LINE\n"
    assert (after.st_uid, after.st_gid, after.st_mode, after.st_mtime_ns) == (
        before.st_uid, before.st_gid, before.st_mode, before.st_mtime_ns)
    assert report.score == 0 and "TOP-SECRET-LINE" not in str(report.to_gradescope())


def test_the_results_files_are_opened_before_grading_and_never_through_a_link(tmp_path: Path) -> None:
    import os

    from shared.grading.report import open_results_file, write_results_file

    target = tmp_path / "report.py"
    target.write_text("print('the grader's own code')\n")
    link = tmp_path / "results.json"
    link.symlink_to(target)
    with pytest.raises(OSError):
        open_results_file(link)
    fd = open_results_file(tmp_path / "grade.json")
    try:
        (tmp_path / "grade.json").unlink()  # replaced by a link after it was opened
        (tmp_path / "grade.json").symlink_to(target)
        write_results_file(fd, '{"score": 0}')
    finally:
        os.close(fd)
    assert target.read_text() == "print('the grader's own code')\n"


def test_a_process_outliving_the_run_cannot_rewrite_the_results_and_markup_cannot_crash_the_grader(
        demo_course: Path, tmp_path: Path) -> None:
    import json
    import time

    from .helpers import run_cli

    results = tmp_path / "out"
    results.mkdir()
    forged = json.dumps({"score": 7.0, "tests": []})
    targets = [str(results / "grade.json"), str(results / "results.json")]
    daemon = f"import time\ntime.sleep(4)\nfor path in {targets!r}:\n    open(path, 'w').write({forged!r})\n"
    later = ("import subprocess as _subprocess\nimport sys as _sys\n\n"
             f"_subprocess.Popen([_sys.executable, '-c', {daemon!r}], start_new_session=True,\n"
             "                  stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL)\n")
    submission = _with_prelude(later, _skeleton(demo_course)).replace(
        '    raise NotImplementedError("lab01 task 1', '    raise ValueError("[/] [bold]not markup[/bold] [/x]")\n'
        '    raise NotImplementedError("lab01 task 1')
    run = run_cli("grade", "--submission", str(make_submission(tmp_path / "sub", submission)), "--lab", DEMO_LAB,
                  "--json", str(results / "grade.json"), "--gradescope", str(results / "results.json"),
                  cwd=demo_course)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "[/][bold]notmarkup[/bold][/x]" in "".join(run.stdout.split()), run.stdout  # printed as it is
    time.sleep(6)  # the forger would have written by now
    assert json.loads((results / "grade.json").read_text())["score"] == 0
    scope = json.loads((results / "results.json").read_text())
    assert scope["score"] == 0 and validate(scope) == []


CRASH_TESTS = '''
import os

import pytest

from shared.impl import lab_module

calc = lab_module("lab01_demo", "calc")


@pytest.mark.task(2)
@pytest.mark.points(4)
@pytest.mark.parametrize("x", [11, 12, 13, 14])
def test_scale_many(x):
    assert calc.scale(x, 2) == 2 * x


@pytest.mark.task(2)
@pytest.mark.points(1)
def test_graded_with_the_fixture_models():
    """A grade never depends on a model named by the grader's environment."""
    assert os.environ.get("COURSE_MODEL") is None and os.environ.get("COURSE_DRAFT_MODEL") is None
'''

CRASH_ONCE = DEMO_SOLUTION.replace("    product = x * factor\n", "    if x == 13:  # a bug that kills the process\n"
                                   "        import faulthandler\n        faulthandler._sigsegv()\n"
                                   "    product = x * factor\n")


@pytest.fixture(scope="module")
def honest_crash(tmp_path_factory: pytest.TempPathFactory) -> tuple[GradeReport, LabResult]:
    """An honest solution whose ``scale`` segfaults for one parametrized case, graded with
    ``$COURSE_MODEL`` and ``$COURSE_DRAFT_MODEL`` naming a folder that is not a model."""
    folder = tmp_path_factory.mktemp("crash")
    course = make_demo_course(folder / "course", {
        f"{DEMO_LAB}/tests/test_more.py": CRASH_TESTS,
        f"{DEMO_LAB}/README.md": "# Lab 1: demo\n\n## Task 1 — Adding (4 points)\n\n## Task 2 — Scaling (8 points)\n",
    })
    with pytest.MonkeyPatch.context() as patch:
        from .helpers import FAST_CHILD_ADDOPTS

        patch.setenv("PYTEST_ADDOPTS", FAST_CHILD_ADDOPTS)
        patch.delenv("COURSE_IMPL", raising=False)
        patch.setenv("COURSE_MODEL", str(folder))
        patch.setenv("COURSE_DRAFT_MODEL", str(folder))
        report = grade(submission=make_submission(folder / "sub", CRASH_ONCE), root=course, labs=[DEMO_LAB])
    return report, report.labs[0]


def test_a_test_that_crashes_once_costs_only_its_own_case(honest_crash: tuple[GradeReport, LabResult]) -> None:
    report, lab = honest_crash
    outcomes = {t.nodeid.split("::")[-1]: t.outcome for t in lab.graded()}
    assert outcomes.pop("test_scale_many[13]") == "error"
    assert set(outcomes.values()) == {"passed"}, outcomes
    assert (lab.withheld, lab.integrity) == ("", [])
    assert (report.score, report.max_score) == (11.0, 12.0)  # 1 of test_scale_many's 4 points lost


def test_the_model_named_by_the_environment_does_not_move_a_grade(
        honest_crash: tuple[GradeReport, LabResult]) -> None:
    _, lab = honest_crash
    [test] = [t for t in lab.graded() if t.nodeid.endswith("test_graded_with_the_fixture_models")]
    assert test.outcome == "passed", test.message


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install -y bubblewrap)")
def test_grading_runs_under_bubblewrap_where_it_is_installed() -> None:
    """CI installs bubblewrap: a sandbox that cannot start there is a failure, not a fallback."""
    with open_sandbox(MAIN) as box:
        assert (box.kind, box.warnings) == ("bubblewrap", [])


#: What Debian's bwrap 0.8.0 prints where it may not create namespaces (Docker without
#: CAP_SYS_ADMIN, its default seccomp profile).
BWRAP_REFUSED = "bwrap: Creating new namespace failed: Operation not permitted"


def test_without_bubblewrap_the_grader_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """``$COURSE_GRADE_SANDBOX=user`` forces the fallback (for instructors and tests); the probe
    test below checks the warning and the grading in that mode."""
    from shared.grading.sandbox import bubblewrap_problem

    monkeypatch.setenv("COURSE_GRADE_SANDBOX", "user")
    assert bubblewrap_problem() == "$COURSE_GRADE_SANDBOX=user"


def test_without_a_cgroup_memory_is_bounded_per_process_and_the_report_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.grading import sandbox

    monkeypatch.setattr(sandbox, "open_tree_limit", lambda memory, processes: (None, "no cgroup v2 hierarchy"))
    with open_sandbox(MAIN, memory_bytes=3 << 30) as box:
        assert box.tree is None
        assert box.limits_warning.startswith("memory is limited per process only (RLIMIT_DATA, 3.0 GiB each), not "
                                             "for the graded code's whole process tree: no cgroup could be created "
                                             "(no cgroup v2 hierarchy)")
        assert "memory 3.0 GiB per process only (no cgroup)" in box.describe()


#: A submission whose ``scale`` forks 4 workers for one input (test_scale's), each filling 60 % of
#: the tree's memory limit (each within RLIMIT_DATA, the limit per process), and fails when one
#: of them dies. Without a cgroup it gets 7 / 7.
FORK_FOUR = """
def _workers(size):
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            block = b"\\1" * size  # written, so really resident
            os._exit(0 if len(block) == size else 1)
        pids.append(pid)
    if any(os.waitpid(pid, 0)[1] != 0 for pid in pids):
        raise RuntimeError("a worker died")

"""
TREE_MEMORY_GB = 0.5


def test_a_refused_bwrap_falls_back_loudly_and_forked_processes_share_one_memory_limit(
        demo_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bwrap installed but refused its namespaces (Docker, unprivileged): the probe, run once with
    the children's own flags, finds it; the grader falls back to a user of its own (as root) and
    says why and how to fix it. In that mode (one grading for both checks: the cgroup is joined
    the same way under bubblewrap) a cgroup, where one can be made, bounds the memory of every
    process the graded code forks together: the test whose workers overrun it fails and says so,
    the others pass; where none can be made, the report says that memory is bounded per process."""
    import os

    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho '{BWRAP_REFUSED}' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("COURSE_GRADE_MEMORY_GB", str(TREE_MEMORY_GB))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))  # no fixture models to copy (as the same user)
    size = int(0.6 * TREE_MEMORY_GB * (1 << 30))
    forking = DEMO_SOLUTION.replace("\n\ndef scale(", "\n\n" + FORK_FOUR + "\ndef scale(", 1).replace(
        "    product = x * factor\n", f"    if x == 3:\n        _workers({size})\n    product = x * factor\n")
    report, lab = _grade(make_submission(tmp_path / "forks", forking), demo_course)

    [warning] = [w for w in report.warnings if "bubblewrap" in w]
    assert f"bwrap is installed but could not start this interpreter in its sandbox; it said: {BWRAP_REFUSED}" \
        in warning and "--cap-add SYS_ADMIN" in warning and "unprivileged_userns_clone" in warning, warning
    assert not report.sandbox.startswith("bubblewrap")
    if os.geteuid() == 0 and "as root" not in warning:  # the separate user: the README's Gradescope mode
        assert "falling back to a user id of its own" in warning
        assert report.sandbox.startswith("a user id of its own"), report.sandbox
    assert lab.withheld == "" and not [f for f in lab.integrity if f.kind == "runtime"]

    if TREE_PROBLEM:
        assert report.score == FULL  # each worker within its own limit
        assert any(w.startswith("memory is limited per process only") for w in report.warnings), report.warnings
        return
    assert f"{TREE_MEMORY_GB:.1f} GiB of memory" in report.sandbox and "for the whole process tree (cgroup v" \
        in report.sandbox, report.sandbox
    [forked] = [t for t in lab.graded() if t.outcome != "passed"]  # the others are unaffected
    assert forked.nodeid.endswith("::test_scale") and forked.outcome == "failed", forked.message
    assert forked.message.startswith(f"the memory limit of the whole test process tree ({TREE_MEMORY_GB:.1f} GiB "
                                     "for every process together) was hit: the kernel ended "), forked.message
    assert "RuntimeError: a worker died" in forked.message
    assert report.score == FULL - forked.points


@pytest.mark.skipif(SANDBOX != "bubblewrap", reason="only bubblewrap keeps the course out of the graded code's reach")
def test_the_course_edited_while_grading_under_bubblewrap_withholds_nothing(
        demo_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An instructor (or a colleague) editing the course during a grading is no tampering when the
    graded code could not see the course at all: a warning, not a withheld score."""
    from shared.grading import integrity

    stamps = iter([{"README.md": (1, 1)}, {"README.md": (2, 2)}])  # before, after: edited meanwhile
    monkeypatch.setattr(integrity, "course_stamp", lambda root, labs: next(stamps))
    report, lab = _grade(make_submission(tmp_path / "honest", DEMO_SOLUTION), demo_course)
    assert (report.score, lab.withheld, lab.integrity) == (FULL, "", [])
    assert any("README.md" in warning and "bubblewrap" in warning for warning in report.warnings)
