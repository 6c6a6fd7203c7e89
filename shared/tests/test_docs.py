"""The docs stay true: every try-it block runs and prints what its doc shows, and every link,
repository path, dotted name and ``course`` command a doc names exists (see ``shared/docs_check.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import docs_check
from shared.paths import ROOT

DOCS = ["01_paged_attention.md", "02_vllm_architecture.md", "03_llama_cpp.md", "04_sglang.md",
        "05_framework_comparison.md"]
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


@pytest.mark.parametrize("name", DOCS)
def test_references_exist(name: str) -> None:
    problems = docs_check.broken_references(_doc(name))
    assert not problems, f"docs/{name}:\n" + "\n".join(problems)


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
