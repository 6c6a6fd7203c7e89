"""The docs stay true: every try-it block runs and prints what its doc shows; every link, path,
dotted name, ``python -m`` module and ``course`` command that a doc or a lab's README names exists;
and every version and default in ``docs/versions.md`` is what the installed package says
(see ``shared/docs_check.py``)."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import docs_check
from shared.paths import ROOT

DOCS = ["01_paged_attention.md", "02_vllm_architecture.md", "03_llama_cpp.md", "04_sglang.md",
        "05_framework_comparison.md"]
#: Every text the course ships that names files, modules and commands: the docs, their index and
#: version table, the labs' READMEs, the course's own README and guide.
REFERENCING = sorted({f"docs/{name}" for name in DOCS} | {"docs/README.md", "docs/versions.md"}
                     | {str(path.relative_to(ROOT)) for path in ROOT.glob("lab0*/README.md")})
MIN_WORDS = 1500
#: Frameworks a doc may use that an install can lack (``install.sh --minimal``, other platforms):
#: a block that needs a missing one skips its doc's test with the reason; anything else fails.
OPTIONAL_PACKAGES = {"llama_cpp", "vllm", "sglang", "xgrammar", "gguf"}


def _doc(name: str) -> Path:
    path = ROOT / "docs" / name
    if not path.exists():
        pytest.skip(f"docs/{name} has not been written yet")
    return path


@pytest.mark.timeout(600)  # ~10-40 s a doc on 2 idle cores; far more on a loaded machine
@pytest.mark.parametrize("name", DOCS)
def test_try_it_blocks_print_what_the_doc_shows(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _doc(name)
    if any(ROOT.glob("lab*/solution")):
        monkeypatch.setenv("COURSE_IMPL", "solution")  # the docs show the reference's output
    results = docs_check.run_try_its(path)
    for result in results:
        if result.missing_module in OPTIONAL_PACKAGES:
            pytest.skip(f"docs/{name}, the try-it block at line {result.line}, needs {result.missing_module}, "
                        "which is not installed here (bash shared/install.sh installs it where it runs)")
        assert result.error is None, f"docs/{name}, the try-it block at line {result.line} raised:\n{result.error}"
        assert result.ok, (f"docs/{name}, the try-it block at line {result.line} printed something else.\n"
                           f"--- the doc shows:\n{result.expected}\n--- it printed:\n{result.printed}")


@pytest.mark.parametrize("name", REFERENCING)
def test_references_exist(name: str) -> None:
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"{name} has not been written yet")
    problems = docs_check.broken_references(path)
    assert not problems, f"{name}:\n" + "\n".join(problems)


#: The names of the developers' notes, spelled in parts so that this file does not cite them itself.
NOTES_NAMES = ("FIELD" + "_NOTES", "COURSE" + "_DESIGN")


def test_nothing_cites_notes_the_course_does_not_ship() -> None:
    """The developers' notes kept beside a checkout (the field notes and the design notes) are not part
    of the course: what it needs from them is written in its own docs, with its own measurements."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout (a grading copy): the release check covers the edition")
    this_file = Path(__file__).resolve()
    found = []
    for name in tracked.stdout.splitlines():
        path = ROOT / name
        if path.suffix not in {".md", ".py", ".txt", ".toml", ".html", ".sh"} or path.resolve() == this_file \
                or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{name}: {word}" for word in NOTES_NAMES if word in text]
    assert not found, "files cite notes the course does not ship:\n" + "\n".join(found)


# Versions and defaults (docs/versions.md), each read from the installed package.

CLAIMS = docs_check.version_claims() if docs_check.VERSIONS.exists() else []


@pytest.mark.parametrize("claim", CLAIMS, ids=[claim.what for claim in CLAIMS])
def test_version_claim_holds_for_the_installed_package(claim: docs_check.VersionClaim) -> None:
    actual, why_not = docs_check.read_claim(claim.reading)
    if why_not:
        pytest.skip(f"docs/versions.md:{claim.line} ({claim.what}): {why_not}")
    assert docs_check.claim_holds(claim.value, actual), (
        f"docs/versions.md:{claim.line}: the docs state {claim.what} = {claim.value}, the installed package "
        f"says {actual!r} ({claim.reading}): correct the row and every doc it lists ({', '.join(claim.stated_in)})")


def test_versions_table_lists_what_the_docs_state() -> None:
    whats = {claim.what for claim in CLAIMS}
    for needed in ("vLLM `gpu_memory_utilization` default", "vLLM structured-output backend default",
                   "SGLang `--schedule-policy` default", "CTranslate2 release series"):
        assert needed.replace("`", "") in whats, f"docs/versions.md has no row for {needed}"
    for claim in CLAIMS:
        for doc in claim.stated_in:
            assert list(ROOT.glob(doc + "*")), f"docs/versions.md:{claim.line}: no such doc {doc}"


TABLE = """| claim | value | stated in | read from |
|---|---|---|---|
| the docs check's tolerance factor | {value} | docs/README.md | `python shared/docs_check.py {name}` |
"""


def test_planted_wrong_default_fails(tmp_path: Path) -> None:
    versions = tmp_path / "versions.md"
    versions.write_text(TABLE.format(value="10", name="TOLERANCE_FACTOR"))
    [claim] = docs_check.version_claims(versions)
    actual, why_not = docs_check.read_claim(claim.reading)
    assert why_not is None and docs_check.claim_holds(claim.value, actual)
    versions.write_text(TABLE.format(value="9", name="TOLERANCE_FACTOR"))  # a wrong default
    [claim] = docs_check.version_claims(versions)
    assert not docs_check.claim_holds(claim.value, docs_check.read_claim(claim.reading)[0])
    versions.write_text(TABLE.format(value="10", name="NO_SUCH_CONSTANT"))  # a stale name
    [claim] = docs_check.version_claims(versions)
    with pytest.raises(LookupError):
        docs_check.read_claim(claim.reading)


def test_planted_wrong_vllm_default_fails(tmp_path: Path) -> None:
    reading = "python vllm/config/cache.py CacheConfig.gpu_memory_utilization"
    actual, why_not = docs_check.read_claim(reading)
    if why_not:
        pytest.skip(why_not)
    assert docs_check.claim_holds("0.92", actual) and not docs_check.claim_holds("0.9", actual)


@pytest.mark.parametrize(("shown", "actual", "holds"), [
    ("0.32.0", "0.32.0", True), ("5.19", "5.19.0", True), ("5.1", "5.19.0", False),
    ("2.13.0", "2.13.0+cpu", True), ("1.x", "1.2.0", True), ("1.x", "0.21.0", False),
    ("auto", "auto", True), ("xgrammar", "auto", False), ("None (one token per page)", None, True),
    ("True", True, True), ("False", True, False), ("1.0", 1.0, True), ("1.1", 1.0, False), ("15", 15, True),
])
def test_claim_holds(shown: str, actual: object, holds: bool) -> None:
    assert docs_check.claim_holds(shown, actual) is holds


@pytest.mark.parametrize("name", DOCS)
def test_doc_is_substantial(name: str) -> None:
    words = docs_check.word_count(_doc(name))
    assert words >= MIN_WORDS, f"docs/{name} has {words} words of prose; the course asks for {MIN_WORDS}+"


def test_docs_hold_no_solution_line() -> None:
    """The docs ship in the student edition: no line of a solution block may appear in them
    (``course release`` refuses the edition otherwise; this says which doc at once)."""
    from shared.release import solution_lines

    wanted = solution_lines()
    found = [f"docs/{path.name} holds {where}: {line[:70]!r}"
             for path in sorted((ROOT / "docs").glob("*.md"))
             for line, where in wanted.items() if line in path.read_text(encoding="utf-8")]
    assert not found, "\n".join(found)


def test_index_lists_every_doc() -> None:
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    missing = [name for name in DOCS if name not in index]
    assert not missing, f"docs/README.md does not list {missing}"
    assert not docs_check.broken_references(ROOT / "docs" / "README.md")


# Plain blocks marked "# runs against: course serve ...": run against the reference server.

SERVED_BLOCKS = [(name, block) for name in DOCS if (ROOT / "docs" / name).exists()
                 for block in docs_check.served_blocks((ROOT / "docs" / name).read_text(encoding="utf-8"))]


@pytest.fixture(scope="module")
def reference_server() -> Iterator[str]:
    """One reference ``course serve --sglang`` on a free port (it answers the OpenAI routes of
    ``course serve`` and SGLang's native ones), for every served block of every doc."""
    if not any(ROOT.glob("lab*/solution")):
        pytest.skip("the blocks run against the reference server, which this edition does not have")
    for package in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"course serve needs {package}, which is not installed here")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-m", "shared.cli", "serve", "--impl", "solution", "--sglang",
                                    "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
        try:
            deadline = time.monotonic() + 240  # 20 s on 2 idle cores, more on a busy machine
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    urllib.request.urlopen(base + "/v1/models", timeout=2).read()
                    break
                except OSError:
                    time.sleep(1)
            else:
                log.seek(0)
                pytest.fail(f"course serve did not start:\n{log.read().decode(errors='replace')[-3000:]}")
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("name", "block"), SERVED_BLOCKS, ids=[f"{n}:{b.line}" for n, b in SERVED_BLOCKS])
def test_served_block_runs_against_the_course_server(name: str, block: docs_check.ServedBlock,
                                                     reference_server: str) -> None:
    assert block.command.startswith("course serve"), f"docs/{name}:{block.line}: {block.command!r} is no course serve"
    result = subprocess.run([sys.executable, "-c", docs_check.point_at(block.code, reference_server)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    missing = re.search(r"ModuleNotFoundError: No module named '(\w+)", result.stderr)
    if missing and missing.group(1) in OPTIONAL_PACKAGES | {"openai"}:
        pytest.skip(f"docs/{name}:{block.line} needs {missing.group(1)}, which is not installed here")
    assert result.returncode == 0, f"docs/{name}:{block.line} failed against {block.command}:\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), f"docs/{name}:{block.line} printed nothing"


def test_served_blocks_are_found() -> None:
    text = "```python\n# runs against: course serve --sglang\nprint(1)\n```\n\n```python\nprint(2)\n```\n"
    [block] = docs_check.served_blocks(text)
    assert block.command == "course serve --sglang" and block.line == 1
    assert docs_check.point_at('E("http://127.0.0.1:30000")', "http://127.0.0.1:5") == 'E("http://127.0.0.1:5")'


# The checker itself, on small texts: a checker that passes everything checks nothing.

SAMPLE = '''Some prose.

```python
# try it
print("total: 12 bytes")
print("took 0.5 ms")
```

```text
total: 12 bytes
~ took 0.4 ms
```
'''


def test_checker_pairs_blocks_and_tolerates_marked_lines(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(SAMPLE)
    [result] = docs_check.run_try_its(doc)
    assert result.ok, result.printed
    doc.write_text(SAMPLE.replace("total: 12 bytes\n~", "total: 13 bytes\n~"))
    assert not docs_check.run_try_its(doc)[0].ok  # unmarked lines must match exactly


@pytest.mark.parametrize(("expected", "actual", "ok"), [
    ("~ took 0.4 ms", "took 3.9 ms", True),
    ("~ took 0.4 ms", "took 4.1 ms", False),  # beyond the factor of 10
    ("~ took 0.4 ms", "took 0.4 s", False),  # words must match
    ("~ 1,280 tokens/s", "900 tokens/s", True),
    ("took 0.4 ms", "took 0.5 ms", False),
    # a ratio keeps its side of 1: "faster" never passes for a 10x slower figure
    ("~ wall clock: the cached loop was 5.9x faster", "wall clock: the cached loop was 12.0x faster", True),
    ("~ wall clock: the cached loop was 5.9x faster", "wall clock: the cached loop was 1.2x faster", True),
    ("~ wall clock: the cached loop was 5.9x faster", "wall clock: the cached loop was 0.6x faster", False),
    ("~ wall clock: the cached loop was 5.9x faster", "wall clock: the cached loop was 0.1x faster", False),
    # ... whatever its size (a loaded machine moves a ratio of timings further than any factor)
    ("~ wall clock: the cached loop was 5.9x faster", "wall clock: the cached loop was 92.6x faster", True),
    # a number that is not a timing is exact, or within the tolerance its line states
    ("~ 48 tokens in 0.5 s", "48 tokens in 2.0 s", True),
    ("~ 48 tokens in 0.5 s", "49 tokens in 0.5 s", False),
    ("~ Q4_0  perplexity of the held-out text 142.91 [±1 %]", "Q4_0  perplexity of the held-out text 143.80", True),
    ("~ Q4_0  perplexity of the held-out text 142.91 [±1 %]", "Q4_0  perplexity of the held-out text 150.00", False),
    ("~ Q4_0  perplexity of the held-out text 142.91", "Q4_0  perplexity of the held-out text 142.92", False),
    ("~ Q4_0  perplexity of the held-out text 142.91 [±0.05]", "Q4_0  perplexity of the held-out text 142.95", True),
    ("~ Q4_0  perplexity of the held-out text 142.91 [±0.05]", "Q4_0  perplexity of the held-out text 143.0", False),
    ("~ Q4_0  perplexity 142.91 [±1 %]", "Q8_0  perplexity 142.91", False),  # names are words, not numbers
])
def test_line_tolerance(expected: str, actual: str, ok: bool) -> None:
    assert docs_check.line_matches(expected, actual) is ok


def test_ellipsis_stands_for_any_lines() -> None:
    assert docs_check.output_matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert docs_check.output_matches(["a", "...", "z"], ["a", "z"])
    assert not docs_check.output_matches(["a", "...", "z"], ["a", "b"])


def test_missing_optional_package_is_reported(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("```python\n# try it\nimport no_such_package_here\n```\n\n```text\n```\n")
    [result] = docs_check.run_try_its(doc)
    assert not result.ok and result.missing_module == "no_such_package_here"


def test_try_it_without_output_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="followed"):
        docs_check.try_its("```python\n# try it\nprint(1)\n```\n\nprose\n\n```text\n1\n```\n")


def test_broken_references_are_found(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("See [x](nowhere.md), `shared/nowhere.py`, `shared.hardware.no_such_function`, "
                   "`course frobnicate`, and the good `shared/hardware.py`, `shared.hardware.estimate_memory`, "
                   "`course test lab01 --task 3`, `course serve --port 8001`, [web](https://example.org).\n")
    problems = docs_check.broken_references(doc)
    assert len(problems) == 4, problems


def test_planted_dangling_path_in_a_lab_readme_fails(tmp_path: Path) -> None:
    """A lab's README names files relative to its folder, other projects' files after the project's
    name, and modules to run: each that does not exist is reported, and only those."""
    lab = tmp_path / "lab09_planted"
    (lab / "src").mkdir(parents=True)
    (lab / "src" / "engine.py").write_text("")
    readme = lab / "README.md"
    good = ("**Write** in `src/engine.py`; read ggml's `docs/gguf.md`, llama.cpp's `ggml/src/ggml-quants.c` "
            "(`dequantize_row_q4_0`) and `ggml/src/ggml-common.h`, `lab01_huggingface/src/generation.py`; "
            "run `python -m shared.docs_check docs/01_paged_attention.md`.\n")
    readme.write_text(good)
    assert docs_check.broken_references(readme) == []
    readme.write_text(good + "Then `src/nowhere.py`, `docs/gguf.md` (whose? unmarked), "
                      "`python -m shared.no_such_tool`, and `course check --no-such-flag`; the course's own "
                      "`shared/no_such_helper.py` is the course's, not another project's.\n")
    problems = docs_check.broken_references(readme)
    assert len(problems) == 5, problems
    assert any("shared/no_such_helper.py" in problem for problem in problems)
    assert any("src/nowhere.py" in problem for problem in problems)
    assert any("docs/gguf.md" in problem for problem in problems)
    assert any("shared.no_such_tool" in problem for problem in problems)


def test_llama_cpp_commands_are_checked_against_its_source(tmp_path: Path) -> None:
    """llama.cpp's tools take the options its common/arg.cpp gives them: `llama-cli -cnv` (the old
    way to chat) is refused since llama-cli became the chat tool and -cnv moved to llama-completion."""
    if not docs_check.llama_cpp_options():
        pytest.skip("llama.cpp's source (the llama-cpp-python source package) is not on this machine")
    doc = tmp_path / "doc.md"
    doc.write_text("Run `llama-completion -m model.gguf -no-cnv -p hi -n 32 --temp 0 --repeat-penalty 1 -fa on`, "
                   "`llama-server -m model.gguf -np 4 --kv-unified --cache-ram 0`, `llama-cli -m model.gguf -cnv` "
                   "and `llama-server --frobnicate`.\n")
    problems = docs_check.broken_references(doc)
    assert len(problems) == 2, problems
    assert "llama-cli does not take -cnv" in problems[0] and "no option --frobnicate" in problems[1]


def test_options_named_alone_must_exist_somewhere(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    if not docs_check.llama_cpp_options() or any(docs_check._installed_package_dir(package) is None
                                                 for package, _, _ in docs_check.OPTION_SOURCES):
        pytest.skip("an option is refused only where every tool's options can be read (a full install)")
    doc.write_text("Pass `--impl solution`, `--task 3`; not `--no-such-option`; TGI's `--num-shard` is TGI's.\n")
    [problem] = docs_check.broken_references(doc)
    assert "--no-such-option" in problem
    if docs_check._installed_package_dir("vllm") is not None:  # read from vLLM's own source
        assert docs_check._check_option("--gpu-memory-utilization 0.5") is None
        assert docs_check._check_option("--structured-outputs-config.backend xgrammar") is None
        assert docs_check._check_option("--gpu-memory-utilisation") is not None


def test_installed_package_paths_are_looked_for_in_the_package(tmp_path: Path) -> None:
    if docs_check._installed_package_dir("transformers") is None:
        pytest.skip("transformers is not installed here")
    doc = tmp_path / "doc.md"
    doc.write_text("Read `transformers/generation/utils.py` and `transformers/generation/no_such_file.py`.\n")
    [problem] = docs_check.broken_references(doc)
    assert "no_such_file.py" in problem and "installed transformers" in problem
