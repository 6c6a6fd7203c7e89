"""Prepare: the grading copy, built like the student edition, plus hidden tests and ``src/``.

1. :func:`build_copy` writes the course as the student edition has it (``shared.release``
   decides what it leaves out: every ``solution/``, the instructor-only ``instructor/`` folders,
   CI, the course's own tests), plus each lab's ``tests/hidden/``. So nothing a submission could
   import holds an answer: ``import lab01_x.solution`` fails there.
2. The grader collects what the course expects in that copy (``collect.py``), while every
   ``src/`` is still the course's skeleton.
3. :func:`add_submission` replaces each graded lab's ``src/`` with the submission's regular files
   there. A symlink (``src`` itself or a file in it), a ``conftest.py`` or a very large file is
   refused; files elsewhere in the submission are ignored. Each is listed as a note.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..paths import LAB_DIR_PATTERN
from ..release import course_files, left_out
from .collect import GradingError

MAX_SOURCE_BYTES = 5 << 20  # a src file larger than this is no source code
MAX_NOTES = 20
SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".hypothesis", ".ipynb_checkpoints"}


def is_hidden_test(relative: Path) -> bool:
    parts = relative.parts
    return bool(LAB_DIR_PATTERN.match(parts[0])) and parts[1:3] == ("tests", "hidden")


def build_copy(root: Path, into: Path) -> Path:
    """Write the grading copy of the course at ``root`` into ``into`` (see the module docstring)."""
    for relative in course_files(root):
        if len(relative.parts) > 1 and relative.parts[1] == "instructor":
            continue  # instructor-only notes (mutants), whatever release's version says
        if left_out(relative) and not is_hidden_test(relative):
            continue
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)
    return into


def locate(submission: Path, labs: list[str]) -> tuple[Path, list[str]]:
    """The folder of ``submission`` that holds its lab folders, and notes.

    Raises:
        GradingError: when ``submission`` is missing, empty or holds none of ``labs``.
    """
    submission = Path(submission).expanduser()
    if not submission.is_dir():
        raise GradingError(f"{submission}: no such folder")
    if not any(submission.iterdir()):
        raise GradingError(f"{submission}: the folder is empty")
    if any((submission / lab).is_dir() for lab in labs):
        return submission, []
    nested = [d for d in submission.iterdir() if d.is_dir() and not d.is_symlink()
              and any((d / lab).is_dir() for lab in labs)]
    if len(nested) == 1:  # a repository uploaded inside a folder
        return nested[0], [f"graded the course found in {nested[0].name}/ inside the submission"]
    expected = ", ".join(f"{lab}/src/" for lab in labs)
    raise GradingError(f"{submission}: not a copy of this course, no lab folders in it "
                       f"(expected one or more of {expected})")


def add_submission(copy: Path, submission: Path, labs: list[str], root: Path) -> tuple[set[str], list[str]]:
    """Replace ``copy/<lab>/src`` with the submission's files for each of ``labs``.

    Returns:
        the labs whose ``src/`` the submission has, and notes on what was refused or ignored.
    """
    found, notes = set(), []
    for lab in labs:
        source = submission / lab / "src"
        if (submission / lab).is_symlink() or source.is_symlink():
            notes.append(f"{lab}/src is a symbolic link: refused (submit the files themselves)")
            continue
        if not source.is_dir():
            notes.append(f"{lab}/src/ is not in the submission: its tests are not run")
            continue
        found.add(lab)
        target = copy / lab / "src"
        shutil.rmtree(target, ignore_errors=True)
        notes += _copy_sources(source, target, lab)
        notes += _ignored_changes(submission / lab, root / lab, lab)
    if len(notes) > MAX_NOTES:
        notes = [*notes[:MAX_NOTES], f"... and {len(notes) - MAX_NOTES} more"]
    return found, notes


def _copy_sources(source: Path, target: Path, lab: str) -> list[str]:
    notes = []
    target.mkdir(parents=True)
    for folder, dirs, files in os.walk(source):  # does not follow symlinked folders
        here = Path(folder)
        relative_dir = here.relative_to(source)
        for name in list(dirs):
            if name in SKIPPED_NAMES:
                dirs.remove(name)
            elif (here / name).is_symlink():
                dirs.remove(name)
                notes.append(f"{lab}/src/{relative_dir / name} is a symbolic link: refused")
        for name in files:
            path, shown = here / name, f"{lab}/src/{(relative_dir / name).as_posix()}"
            if name.endswith((".pyc", ".pyo")):
                continue
            if path.is_symlink():
                notes.append(f"{shown} is a symbolic link: refused")
            elif not path.is_file():
                notes.append(f"{shown} is not a regular file: refused")
            elif name == "conftest.py":
                notes.append(f"{shown}: a conftest.py in src/ is refused (only the course's own count)")
            elif path.stat().st_size > MAX_SOURCE_BYTES:
                notes.append(f"{shown} is larger than {MAX_SOURCE_BYTES >> 20} MB: refused")
            else:
                (target / relative_dir).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / relative_dir / name)
    return notes


def _ignored_changes(submitted_lab: Path, course_lab: Path, lab: str) -> list[str]:
    """Files of the submission's lab folder, outside ``src/``, that differ from the course's own."""
    notes = []
    for folder, dirs, files in os.walk(submitted_lab):
        here = Path(folder)
        dirs[:] = [d for d in dirs if d not in SKIPPED_NAMES and not (here == submitted_lab and d == "src")]
        for name in files:
            relative = (here / name).relative_to(submitted_lab)
            ours = course_lab / relative
            if name.endswith((".pyc", ".pyo")):
                continue
            if (here / name).is_symlink() or not ours.is_file() or _digest(here / name) != _digest(ours):
                notes.append(f"{lab}/{relative.as_posix()}: ignored (only {lab}/src/ is graded; "
                             "the course's own copy is used)")
    return notes


def make_readable(folder: Path, group: int | None = None) -> None:
    """Folders 755 and files 644 under ``folder``, whatever the grader's umask: the graded code's
    user must read the copy, and (the owner being the grader) cannot write it. With ``group``
    (the graded code's own group), ``folder`` itself is 750 and of that group: no other user (the
    code of a submission graded at the same time) can read this copy."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    if group is not None:
        os.chown(folder, -1, group)
        folder.chmod(0o750)


def _digest(path: Path) -> str:
    """sha256 of the file at ``path``, never through a symbolic link (one planted there since the
    file was listed reads as "changed", not as the file it points at)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return "unreadable"
    with os.fdopen(fd, "rb") as handle:
        digest = hashlib.sha256()
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder``: compared after each child run."""
    return {path.relative_to(folder).as_posix(): _digest(path)
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink()}


def changed_files(folder: Path, before: dict[str, str]) -> list[str]:
    """Files of ``folder`` added, removed or changed since ``before`` was taken."""
    now = fingerprint(folder)
    return sorted({*before, *now} - {name for name in before if now.get(name) == before[name]})


def prepare_submission(submission: Path, root: Path, into: Path) -> tuple[Path, set[str], list[str]]:
    """The whole copy at once, for a look at what grading would see: :func:`build_copy`, then
    :func:`add_submission` for every lab the course has."""
    from .collect import labs_with_tests

    labs = labs_with_tests(root)
    where, notes = locate(submission, labs)
    build_copy(root, into)
    found, more = add_submission(into, where, labs, root)
    return into, found, notes + more
