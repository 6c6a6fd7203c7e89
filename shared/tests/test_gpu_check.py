"""``shared.gpu_check``, the one-command GPU run: its CPU smoke path end to end (the code the device
runs, on a tiny shape), and the pieces a device run relies on, against independent oracles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from shared import gpu_check
from shared.models import LLAMA2_7B_CONFIG


def test_the_cpu_smoke_run_writes_one_results_file_with_every_part(tmp_path: Path) -> None:
    """The engine part in this process on a tiny Llama (what ``--cpu-smoke`` runs in a child on a
    CPU, and the device runs on a 7B shape): one JSON file with the environment and one row per
    batch, every request's tokens made, figures positive."""
    out = tmp_path / "gpu.json"
    code = gpu_check.main(["--cpu-smoke", "--skip-tests", "--in-process", "--out", str(out),
                           "--batches", "1", "4", "--prompt-len", "8", "--output-len", "3"])
    results = json.loads(out.read_text())
    assert code == 0, results
    assert results["schema"] == gpu_check.SCHEMA and results["mode"] == "cpu-smoke" and results["status"] == "ok"
    env = results["environment"]
    assert set(env["dependencies"]) == {dist for dist, _ in gpu_check.COURSE_DEPENDENCIES}
    assert env["engine_can_run"] and env["torch"]
    engine = results["engine"]
    assert engine["status"] == "done" and engine["device"] == "cpu"
    assert engine["bandwidth"]["used_bytes_per_s"] == engine["bandwidth"]["measured_copy_bytes_per_s"] > 0
    assert [row["batch"] for row in engine["batches"]] == [1, 4]
    for row in engine["batches"]:
        assert row["status"] == "done"
        assert row["output_tokens"] == row["batch"] * 3
        assert row["output_tokens_per_s"] == pytest.approx(row["output_tokens"] / row["seconds"])
        assert row["decode_step_ms_median"] > 0 and row["decode_steps"] >= 1
        assert row["roofline_tokens_per_s"] > 0 and row["roofline_share"] > 0


@pytest.mark.parametrize("config", [LLAMA2_7B_CONFIG, gpu_check.TINY_LLAMA_CONFIG], ids=["7b", "tiny"])
def test_the_fallback_bytes_equal_deploy_pys(config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where pydantic is missing, deploy.py does not import and the bytes come from
    ``shared.hardware.estimate_memory``: the same numbers (Llama-2-7B: 6,738,415,616 parameters,
    0.5 MiB of bf16 KV per token)."""
    with_deploy = gpu_check.model_bytes(config, "bfloat16")
    assert with_deploy["source"].endswith("deploy.py")
    monkeypatch.setitem(sys.modules, "lab02_vllm.solution.deploy", None)  # import now raises ImportError
    own = gpu_check.model_bytes(config, "bfloat16")
    assert own["source"].startswith("shared.hardware.estimate_memory")
    for key in ("weight_bytes", "kv_bytes_per_token", "parameters"):
        assert own[key] == with_deploy[key], key
    if config is LLAMA2_7B_CONFIG:
        assert own["parameters"] == 6_738_415_616 and own["kv_bytes_per_token"] == 2**19


def test_gpu_bandwidth_by_name_and_the_roofline() -> None:
    """Names as torch reports them pick the data sheet's figure; an unknown GPU gets none (the
    measured copy stands in). The roofline: batch x bandwidth / (weights + KV read per step)."""
    for name, expected in [("NVIDIA H100 80GB HBM3", 3.35e12), ("NVIDIA H100 PCIe", 2.0e12),
                           ("NVIDIA H100 NVL", 3.9e12), ("NVIDIA H200", 4.8e12), ("NVIDIA A100-SXM4-80GB", 2.039e12),
                           ("NVIDIA A100 80GB PCIe", 1.935e12), ("NVIDIA A100-PCIE-40GB", 1.555e12),
                           ("NVIDIA A10G", 0.6e12), ("NVIDIA L40S", 0.864e12), ("NVIDIA L4", 0.3e12),
                           ("Tesla T4", 0.32e12), ("NVIDIA GH200 480GB", 4.0e12)]:
        assert gpu_check.spec_bandwidth(name)[1] == expected, name
    assert gpu_check.spec_bandwidth("NVIDIA RTX A6000") is None
    bound = gpu_check.roofline(batch=2, prompt_len=10, output_len=5, weight_bytes=1000, kv_bytes_per_token=4,
                               bandwidth=1e6)
    assert bound["bytes_per_step"] == 1000 + 2 * 12 * 4  # mean context over the decode steps: 10 + 4 / 2
    assert bound["tokens_per_s"] == pytest.approx(2 * 1e6 / 1096)
    assert bound["weights_only_tokens_per_s"] == pytest.approx(2 * 1e6 / 1000)


def test_test_outcomes_come_from_the_course_records(tmp_path: Path) -> None:
    """The plugin's ``--course-results`` lines give each selected test's outcome; a test started and
    never finished (the run was stopped) is ``incomplete``, one never started ``not run``."""
    records = tmp_path / "records.jsonl"
    lines = [{"event": "collected", "nodeid": n, "lab": "lab02_vllm", "task": 3, "points": 1} for n in "abcd"]
    lines += [{"event": "start", "nodeid": "a"}, {"event": "result", "nodeid": "a", "outcome": "passed"},
              {"event": "start", "nodeid": "b"}, {"event": "result", "nodeid": "b", "outcome": "skipped",
                                                  "message": "needs an NVIDIA GPU"},
              {"event": "start", "nodeid": "c"}, {"event": "collect_error", "nodeid": "x.py", "message": "No pydantic"}]
    records.write_text("\n".join(map(json.dumps, lines)) + "\nnot json\n")
    read = gpu_check.read_course_results(records)
    assert {r["nodeid"]: r["outcome"] for r in read["results"]} == {
        "a": "passed", "b": "skipped", "c": "incomplete", "d": "not run"}
    assert read["counts"] == {"passed": 1, "skipped": 1, "incomplete": 1, "not run": 1}
    assert read["collect_errors"] == [{"nodeid": "x.py", "message": "No pydantic"}]


def test_the_dependency_list_is_pyprojects_and_the_gpu_files_are_found() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((gpu_check.ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("<")[0].strip() for dep in project["dependencies"]}
    assert names == {dist for dist, _ in gpu_check.COURSE_DEPENDENCIES}
    files = {str(f.relative_to(gpu_check.ROOT)) for f in gpu_check.gpu_test_files()}
    assert "lab02_vllm/tests/test_task3_model_runner.py" in files
    assert all(f.startswith("lab") for f in files)
