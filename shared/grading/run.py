"""Run: the expected tests in child pytest processes, watched and read as they go.

Each child is started in the sandbox (``sandbox.py``) with the node ids still to run and
``--course-results /dev/fd/N``: a pipe whose reading end only the parent holds (no file a child
could replace or rewrite). The course plugin writes a ``start`` record when a test begins and a
``result`` record when it ends, each numbered and signed with a key the parent passes on another
pipe, read and closed by the plugin before any code under test runs. The child's output goes to a
file the parent created in a folder of its own and read back through its own descriptor. The
parent reads the records while the child runs, and:

- **enforces a hard per-test limit**: a test still running ``HARD_LIMIT_FACTOR`` times its own
  time limit plus ``HARD_LIMIT_GRACE_S`` after its start record is stopped by the parent (code can
  swallow pytest-timeout's exception: Hypothesis does), and so is a child that takes longer than
  ``START_LIMIT_S`` to reach its first test;
- **counts only what it expects**: a record that is not the plugin's (a wrong signature or
  number), a record for an unknown test, a second result, a result for a test that was not
  running or an unreadable line are *anomalies*, and so are the plugin's own ``tamper`` records;
  the first valid result of each test is the one kept. Points are the collection's (taken before
  any student code existed): a rerun child's own ``collected`` records are checked by name only;
- **recovers from crashes**: when a child dies inside a test (os._exit, a segfault, the hard
  limit), that test fails with the reason and a new child runs the rest; after
  ``CRASHES_BEFORE_SPLIT`` crashes the rest runs one test file per child, so a module that kills
  every test importing it costs those tests, not the lab;
- **keeps to a budget**: when the lab's time budget runs out, every test not run says so;
- **says when memory ran out**: where a cgroup bounds the child's tree (``limits.py``), a test
  that fails or crashes while the kernel ended one of its processes for want of memory says
  that the tree's memory limit was hit.
A test skipped by the course's requirement markers at collection is not run at all (it is *not
gradable here*); any other skip or xfail met while grading is a failure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..pytest_plugin import RESULTS_KEY_FD_ENV
from .collect import child_env
from .results import TestResult
from .sandbox import Sandbox

HARD_LIMIT_FACTOR = 1.5
HARD_LIMIT_GRACE_S = 30.0
NO_TIMEOUT_LIMIT_S = 900.0  # a test whose own limit is off (timeout 0)
START_LIMIT_S = 600.0  # from a child's start to its first test (imports, collection), or between tests
LINGER_LIMIT_S = 60.0  # after its last result, for a child that does not exit
CRASHES_BEFORE_SPLIT = 3
POLL_S = 0.1
OUTPUT_TAIL = 3000


def hard_limit(test: TestResult) -> float:
    """Seconds the parent lets ``test`` run before it stops the child."""
    if not test.timeout:
        return NO_TIMEOUT_LIMIT_S
    return test.timeout * HARD_LIMIT_FACTOR + HARD_LIMIT_GRACE_S


@dataclass
class Records:
    """What children reported, checked against the tests they were asked to run."""

    points: dict[str, float] = field(default_factory=dict)  # of every expected test, from collection
    asked: set[str] = field(default_factory=set)
    collected: set[str] = field(default_factory=set)
    results: dict[str, dict] = field(default_factory=dict)  # the first valid result per test
    anomalies: list[str] = field(default_factory=list)
    tampered: list[str] = field(default_factory=list)
    collect_errors: list[str] = field(default_factory=list)
    running: str | None = None  # started, no result yet
    started: set[str] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)  # last start or result
    key: bytes = b""  # the current child's signing key (b"": records unsigned, the course's own tests)
    seq: int = 0  # the number the plugin's next record must carry
    oom_kills: Callable[[], int] = lambda: 0  # processes the kernel ended for want of memory, so far
    oom_at_start: int = 0  # that count when the running test started

    def new_child(self, ids: list[str], key: bytes) -> None:
        """A child starts: it is asked to run ``ids`` and signs with ``key``."""
        self.asked, self.collected, self.running, self.since = set(ids), set(), None, time.monotonic()
        self.key, self.seq = key, 0

    def _verified(self, line: bytes) -> bytes | None:
        """The JSON of a signed line, or None (and an anomaly) when the plugin did not write it."""
        mac, _, text = line.partition(b" ")
        expected = hmac.new(self.key, text, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(mac, expected):
            self.anomalies.append(f"a record the course's plugin did not write: {line[:120]!r}")
            return None
        return text

    def feed(self, line: bytes) -> None:
        if self.key:
            text = self._verified(line)
            if text is None:
                return
            line = text
        try:
            record = json.loads(line)
            event, nodeid = record["event"], record.get("nodeid", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            self.anomalies.append(f"an unreadable record: {line[:120]!r}")
            return
        if self.key:
            if record.get("seq") != self.seq:
                self.anomalies.append(f"records missing or out of order: number {record.get('seq')!r} came where "
                                      f"{self.seq} was due")
            self.seq = record.get("seq", self.seq) + 1 if isinstance(record.get("seq"), int) else self.seq + 1
        if event == "collection_done":
            return
        if event == "collected":  # the course decided these before any child ran (collect.py): only checked
            if nodeid not in self.asked or nodeid in self.collected:
                self.anomalies.append(f"a collected record for {nodeid!r} worth {record.get('points')!r} points, "
                                      "not one of the tests asked for")
            self.collected.add(nodeid)
            return
        if event == "collect_error":
            self.collect_errors.append(f"{nodeid}: {record.get('message', '')}")
        elif event == "tamper":
            when = "before" if record.get("when") == "before" else "during"
            self.tampered.append(f"{when} {nodeid}: replaced {', '.join(map(str, record.get('changed', [])))}")
        elif nodeid not in self.asked:
            self.anomalies.append(f"a {event} record for {nodeid!r}, a test this run was not asked to run")
        elif event == "start":
            if nodeid in self.started or self.running is not None:
                self.anomalies.append(f"a start record for {nodeid} out of order")
            else:
                self.started.add(nodeid)
                self.running, self.since = nodeid, time.monotonic()
                self.oom_at_start = self.oom_kills()
        elif event == "result":
            if nodeid in self.results:
                self.anomalies.append(f"a second result for {nodeid} ({record.get('outcome')!r})")
            elif nodeid != self.running:
                self.anomalies.append(f"a result for {nodeid} ({record.get('outcome')!r}), which was not running")
            else:
                self.results[nodeid] = record
                self.running, self.since = None, time.monotonic()
                killed = self.oom_kills() - self.oom_at_start
                if killed > 0:  # the parent's own note, never the child's
                    self.results[nodeid] = dict(record, memory_limit_hit=killed)
        else:
            self.anomalies.append(f"an unknown {event!r} record")


class PipeReader:
    """Reads the complete lines a child writes into the parent's pipe, without blocking."""

    MAX_PENDING = 1 << 20  # a "line" longer than this is no record

    def __init__(self, fd: int) -> None:
        self.fd, self.pending = fd, b""
        os.set_blocking(fd, False)

    def new_lines(self) -> list[bytes]:
        chunks = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
        *lines, self.pending = (self.pending + b"".join(chunks)).split(b"\n")
        if len(self.pending) > self.MAX_PENDING:
            lines.append(self.pending[:200])
            self.pending = b""
        return [line for line in lines if line.strip()]


def create_private_file(folder: Path, prefix: str) -> int:
    """A new file in ``folder`` (a fresh random name, created exclusively, never through a
    symbolic link), open for reading and writing, checked to be a regular file the grader owns."""
    fd, _ = tempfile.mkstemp(prefix=prefix, dir=folder)
    status = os.fstat(fd)
    if not (stat.S_ISREG(status.st_mode) and status.st_uid == os.geteuid()):
        os.close(fd)
        raise RuntimeError(f"{folder}: a new file there is not a regular file of the grader's")
    return fd


def read_tail(fd: int, limit: int) -> str:
    """The last ``limit`` bytes of the file open at ``fd``, as text."""
    size = os.fstat(fd).st_size
    return os.pread(fd, limit, max(0, size - limit)).decode("utf-8", errors="replace")


@dataclass
class ChildEnd:
    """How one child ended."""

    code: int | None
    why: str  # "" (it exited), "hard limit", "start limit", "budget"
    output: str
    oom_kills: int = 0  # processes of its tree the kernel ended for want of memory
    memory_bytes: int = 0  # the tree's memory limit


def run_child(course: Path, box: Sandbox, ids: list[str], expected: dict[str, TestResult], records: Records,
              impl: str, results_file: Path, deadline: float, extra_args: list[str]) -> ChildEnd:
    """One child pytest over ``ids``, watched until it exits or the parent stops it."""
    read_records, write_records = os.pipe()
    read_key, write_key = os.pipe()
    key = secrets.token_hex(32).encode()
    os.write(write_key, key)  # 64 bytes: far below a pipe's buffer
    os.close(write_key)
    output = create_private_file(results_file.parent, results_file.stem + "-")
    command = [sys.executable, "-m", "pytest", f"--impl={impl}", "-p", "no:cacheprovider", "-q", "--no-header",
               "-o", "console_output_style=classic", f"--rootdir={course}", "--continue-on-collection-errors",
               f"--course-results=/dev/fd/{write_records}", *extra_args, *ids]
    env = box.env(child_env(course, impl)) | {RESULTS_KEY_FD_ENV: str(read_key)}
    reader = PipeReader(read_records)
    records.new_child(ids, key)
    if box.tree is not None:
        records.oom_kills = box.tree.oom_kills
    oom_before = records.oom_kills()
    try:
        process = box.start(command, cwd=course, env=env, output=output, pass_fds=(write_records, read_key))
    finally:
        os.close(write_records)
        os.close(read_key)
    why = ""
    try:
        while True:
            for line in reader.new_lines():
                records.feed(line)
            code = process.poll()
            if code is not None:
                break
            now = time.monotonic()
            if records.running is not None:
                if now - records.since > hard_limit(expected[records.running]):
                    why = "hard limit"
            elif all(n in records.results for n in ids):
                if now - records.since > LINGER_LIMIT_S:
                    why = "lingered"  # every result is in: what it does now counts for nothing
            elif now - records.since > START_LIMIT_S:
                why = "start limit"
            if now > deadline:
                why = "budget"
            if why:
                break
            time.sleep(POLL_S)
    finally:
        box.stop(process)
        for line in reader.new_lines():
            records.feed(line)
        os.close(read_records)
        tail = read_tail(output, OUTPUT_TAIL)
        os.close(output)
    return ChildEnd(code=process.returncode, why=why, output=tail, oom_kills=records.oom_kills() - oom_before,
                    memory_bytes=box.memory_bytes)


def memory_limit_hit(killed: int, memory_bytes: int) -> str:
    """What a test's message says when the kernel ended ``killed`` processes of the tree."""
    return (f"the memory limit of the whole test process tree ({memory_bytes / (1 << 30):.1f} GiB for every process "
            f"together) was hit: the kernel ended {killed} of its processes")


def _ended(end: ChildEnd, test: TestResult | None) -> str:
    if end.why == "hard limit" and test is not None:
        return (f"it ran past its hard time limit of {hard_limit(test):.0f} s "
                f"({test.timeout:g} s of its own, which did not stop it), so the grader stopped it")
    if end.why == "budget":
        return "the lab's time budget ran out while it ran"
    if end.why == "start limit":
        return f"the test process ran no test for {START_LIMIT_S:.0f} s, so the grader stopped it"
    if end.oom_kills:
        return f"the test process exited with code {end.code}; {memory_limit_hit(end.oom_kills, end.memory_bytes)}"
    return f"the test process exited with code {end.code}"


def run_tests(course: Path, lab: str, tests: list[TestResult], box: Sandbox, *, impl: str, budget_s: float,
              extra_args: list[str] | None = None,
              on_progress: Callable[[str], None] | None = None) -> tuple[Records, list[str]]:
    """Run ``tests`` (those of one lab, in collection order) and set each one's outcome.

    Returns:
        the records (anomalies and tamper records included) and notes on crashes and restarts.
    """
    expected = {t.nodeid: t for t in tests}
    for test in tests:
        if not test.gradable:
            test.outcome, test.message = "not gradable", test.not_gradable
    records, notes = Records(points={t.nodeid: t.points for t in tests}), []
    deadline = time.monotonic() + budget_s
    batches = [[t.nodeid for t in tests if t.gradable]]
    crashes, attempt, split = 0, 0, False
    while batches:
        batch = batches.pop(0)
        if not batch:
            continue
        if time.monotonic() >= deadline:
            _not_run(expected, batch, f"not run: the lab's time budget of {budget_s:.0f} s ran out"
                                      + (f" after {crashes} crashes" if crashes else ""))
            continue
        attempt += 1
        end = run_child(course, box, batch, expected, records, impl,
                        box.records / f"{lab}-{attempt}.jsonl", deadline, extra_args or [])
        for nodeid in batch:
            if nodeid in records.results:
                _apply(expected[nodeid], records.results[nodeid], box.memory_bytes)
        remaining = [n for n in batch if n not in records.results]
        for error in records.collect_errors:  # a test file this child could not import: no rerun helps
            where, _, message = error.partition(": ")
            for nodeid in [n for n in remaining if n.split("::")[0] == where and n not in records.started]:
                expected[nodeid].outcome = "error"
                expected[nodeid].message = f"its test file could not be imported in this run: {message}"
                remaining.remove(nodeid)
        if not remaining:
            continue
        culprit = records.running or next((n for n in remaining if n in records.started), None)
        if culprit is None and not records.started & set(batch):
            # Nothing ran: no test is to blame (the environment, or the sandbox's limits).
            reason = f"not run: the test process ended before its first test ({_ended(end, None)})"
            _not_run(expected, remaining, f"{reason}\n{end.output}")
            notes.append(f"{lab}: {reason}")
            continue
        if culprit is None:  # the child stopped between tests: blame the next one
            culprit = remaining[0]
        test = expected[culprit]
        if end.why == "budget":
            test.outcome, test.message = "error", f"the lab's time budget of {budget_s:.0f} s ran out in this test"
            _not_run(expected, [n for n in remaining if n != culprit],
                     f"not run: the lab's time budget of {budget_s:.0f} s ran out")
            continue
        crashes += 1
        test.outcome = "error"
        test.message = (f"the test run died in this test: {_ended(end, test)}. Look for an infinite loop, "
                        f"a crash, os._exit or sys.exit in your code.\n{end.output}")
        notes.append(f"{lab}: {culprit} crashed or hung the test process ({_ended(end, test)})")
        if on_progress:
            on_progress(f"{lab}: {culprit} crashed or hung; running the remaining tests again")
        rest = [n for n in remaining if n != culprit]
        if crashes >= CRASHES_BEFORE_SPLIT and not split:
            split = True
            by_file: dict[str, list[str]] = {}
            for nodeid in rest + [n for b in batches for n in b]:
                by_file.setdefault(nodeid.split("::")[0], []).append(nodeid)
            batches = list(by_file.values())
            notes.append(f"{lab}: after {crashes} crashes, the rest runs one test file per process")
        else:
            batches.insert(0, rest)
    for error in records.collect_errors:
        notes.append(f"{lab}: while grading, {error}")
    unmet = [t.nodeid for t in tests if t.outcome == "failed" and "(not gradable on this machine)" in t.message]
    if unmet:  # a requirement met for the grader but not for the graded process: the setup, or a fake
        notes.append(f"{lab}: {len(unmet)} test(s) skipped for a missing requirement while grading, though the "
                     f"grader's collection found it met (counted as failures): check that the graded code's user "
                     f"can use the GPU and frameworks, or read the code: {', '.join(unmet[:5])}")
    return records, notes


def _apply(test: TestResult, record: dict, memory_bytes: int = 0) -> None:
    outcome, message = record.get("outcome"), str(record.get("message", ""))
    if record.get("memory_limit_hit") and outcome != "passed":
        message = f"{memory_limit_hit(record['memory_limit_hit'], memory_bytes)}.\n{message}"
    test.duration = float(record.get("duration") or 0.0)
    if outcome in {"passed", "failed", "error"}:
        test.outcome, test.message = outcome, message
    elif outcome == "skipped":  # only the course's requirement markers make a test not gradable
        test.outcome = "failed"
        test.message = f"skipped while grading, which counts as a failure (only a missing GPU or framework " \
                       f"makes a test not gradable): {message}"
    else:
        test.outcome, test.message = "failed", f"an unknown outcome {outcome!r}"


def _not_run(expected: dict[str, TestResult], ids: list[str], why: str) -> None:
    for nodeid in ids:
        test = expected[nodeid]
        if test.outcome == "not run":
            test.message = why
