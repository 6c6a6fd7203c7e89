"""Issue 7's table, one test per row: each dishonest submission gets 0 (or, where its code patched
the test process, is detected and its score withheld), while the honest one keeps full marks.

All on the synthetic ``lab01_demo`` (7 points, 5 graded tests, one hidden): a grading takes a few
seconds. When the grader can run the children as a user of their own (as root, with a Python other users
can run: Gradescope's setup), the attacks are prevented; otherwise the grader can only detect
them, and the tests check whichever applies here.
"""

from __future__ import annotations

import sysconfig
import uuid
from pathlib import Path

import pytest

from shared.grading import GradeReport, LabResult, grade
from shared.grading import run as grading_run
from shared.grading.gradescope import REDACTED, validate
from shared.grading.run import Records
from shared.grading.sandbox import separate_user_available

from .helpers import DEMO_LAB, DEMO_SOLUTION, make_demo_course, make_submission, write_files

pytestmark = pytest.mark.usefixtures("fast_children")

FULL = 7.0
SEPARATED = separate_user_available()  # the graded code runs as a user of its own
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


@pytest.mark.skipif(not SEPARATED, reason="only a user of its own (the grader running as root, with a Python "
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
    assert all("Permission denied" in t.message for t in lab.graded()), [t.message for t in lab.graded()]


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
import sys as _sys

_FILE = next(a.split("=", 1)[1] for a in _sys.argv if a.startswith("--course-results="))
_IDS = [a for a in _sys.argv if "::" in a]


def _forge():
    with open(_FILE, "a") as handle:
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
    assert "a second result for" in found and "worth 1000.0 points" in found
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
    if SEPARATED:  # the copy is read-only to the graded code: every test crashed, none changed
        assert {t.outcome for t in lab.graded()} == {"error"} and not lab.withheld
    else:  # the graded code could write the copy: the grader saw it, and withheld the score
        assert lab.withheld and any("changed the grading copy" in f.what for f in lab.integrity)
    _honest_gets_full_marks(demo_course, tmp_path / "honest")


def test_a_submission_cannot_reach_the_course_or_the_virtual_environment(tmp_path: Path) -> None:
    demo_course = make_demo_course(tmp_path / "course")  # its own: the attack may succeed here
    marker = f"zz_course_grading_attack_{uuid.uuid4().hex[:8]}.pth"
    pth = Path(sysconfig.get_paths()["purelib"]) / marker
    victim = demo_course / DEMO_LAB / "tests" / "test_calc.py"
    original = victim.read_text()
    attack = f'''
import sys as _sys
import sysconfig as _sysconfig

for _path, _text in (({str(pth)!r}, "# a line run by every later Python\\n"),
                     ({str(victim)!r}, "def test_nothing():\\n    pass\\n")):
    try:
        with open(_path, "w") as _handle:
            _handle.write(_text)
    except OSError:
        pass
'''
    try:
        report, lab = _grade(make_submission(tmp_path / "attacker", _with_prelude(attack)), demo_course)
        if SEPARATED:  # prevented: neither file was written, and the submission kept its points
            assert not pth.exists() and victim.read_text() == original
            assert report.score == FULL
        else:  # detected: the score is withheld
            assert lab.withheld and report.score == 0
            assert any("changed outside the sandbox" in f.what for f in lab.integrity)
        assert any(f.what.startswith("names a .pth file") for f in lab.integrity)
    finally:
        pth.unlink(missing_ok=True)
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
    escape = "start_new_session=True" if SEPARATED else "start_new_session=False"
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

    from .helpers import MAIN

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
