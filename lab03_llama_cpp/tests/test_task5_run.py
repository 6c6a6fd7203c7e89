"""Task 5: run a GGUF on the CPU with llama.cpp: completion, chat, streaming, JSON, perplexity,
speed and memory; transformers and llama.cpp's own accounting are the oracles."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time

import gguf
import numpy as np
import pytest
import torch

from .helpers import HELDOUT, hf_greedy_text, llama_cpp_quantize, llama_text, reference_gguf, require_llama_folder, run

pytestmark = [pytest.mark.task(5), pytest.mark.llama_cpp]

PROMPTS = ["The cat", '{"name": "', "A language model predicts the next"]


@pytest.fixture(scope="module")
def f32_file(model_dir):
    """The model in F32, written by llama.cpp's own converter (so this task does not need task 2)."""
    require_llama_folder(model_dir)
    return reference_gguf(model_dir, "f32")


@pytest.fixture(scope="module")
def llm(f32_file):
    llm = run.load(f32_file, n_ctx=256, n_threads=1)
    yield llm
    llm.close()


@pytest.mark.points(1)
def test_load_checks_its_arguments(f32_file, tmp_path):
    """load gives a Llama with the asked context; a missing file, a file that is not GGUF and
    n_ctx=0 are clear errors naming the argument, raised before llama.cpp is called."""
    llm = run.load(f32_file, n_ctx=512, n_threads=1)
    try:
        assert llm.n_ctx() == 512  # llama.cpp rounds a context up to a multiple of 256
        threads = (llm.context_params.n_threads, llm.context_params.n_threads_batch)
        assert threads == (1, 1), (
            f"n_threads=1 must hold for generation and prompt processing alike (llama-cli -t 1), "
            f"got (n_threads, n_threads_batch) = {threads}"
        )
    finally:
        llm.close()
    with pytest.raises(FileNotFoundError, match="missing"):
        run.load(tmp_path / "missing.gguf")
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(ValueError, match="GGUF"):
        run.load(text)
    with pytest.raises(ValueError, match="n_ctx"):
        run.load(f32_file, n_ctx=0)


@pytest.mark.points(3)
def test_greedy_completion_equals_transformers(llm, model, tokenizer):
    """complete() of a text, and of its token ids, equals transformers' greedy generate (fixture
    trained: the texts are its sentences and records), U+FFFD aside (see ``hf_greedy_text``)."""
    for index, prompt in enumerate(PROMPTS):
        ids = tokenizer(prompt).input_ids
        expected = hf_greedy_text(model, tokenizer, ids, 16)
        assert llama_text(run.complete(llm, ids if index else prompt, max_tokens=16)) == expected, prompt


@pytest.mark.points(2)
def test_chat_uses_the_gguf_template(llm, model, tokenizer):
    """chat() renders the GGUF's own chat template: its answer equals transformers' greedy answer
    to apply_chat_template(..., add_generation_prompt=True), for one and several turns."""
    if not tokenizer.chat_template:
        pytest.skip("the model has no chat template")
    conversations = [
        [{"role": "user", "content": "What is the capital of Japan?"}],
        [{"role": "system", "content": "You answer in one short sentence."},
         {"role": "user", "content": "Give me a user record as JSON."}],
    ]
    for messages in conversations:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
        expected = hf_greedy_text(model, tokenizer, ids, 40)
        assert llama_text(run.chat(llm, messages, max_tokens=40)) == expected, messages


@pytest.mark.points(1)
def test_stream_joins_to_the_completion(llm):
    """stream() yields several pieces that join to complete()'s text."""
    pieces = list(run.stream(llm, "The cat", max_tokens=20))
    assert len(pieces) > 3
    assert "".join(pieces) == run.complete(llm, "The cat", max_tokens=20)


@pytest.mark.points(1)
def test_json_output_follows_the_schema(llm):
    """json_complete() returns JSON that validates against the schema (checked by jsonschema), even
    for a schema the model never saw in training. The strings have a maxLength, so that the JSON
    closes within max_tokens on any model (an untrained one may never end a free string)."""
    schemas = [
        {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"},
                                          "city": {"type": "string", "maxLength": 12}},
         "required": ["name", "age", "city"]},
        {"type": "object", "properties": {"colour": {"enum": ["red", "green"]}, "count": {"type": "integer"}},
         "required": ["colour", "count"]},
    ]
    values = [run.json_complete(llm, "Give me a user record as JSON: ", schema, max_tokens=240) for schema in schemas]
    jsonschema = pytest.importorskip("jsonschema", reason="the oracle needs jsonschema: pip install jsonschema")
    for value, schema in zip(values, schemas):
        jsonschema.validate(value, schema)


def hf_perplexity(model, ids: list[int], window: int) -> float:
    """The oracle: perplexity from transformers' logits over the same independent windows."""
    # leak-check: allowed, the oracle's perplexity from transformers' logits: the formula is the task's
    # reading; its points are llama.cpp's logits and the chunking
    total, count = 0.0, 0
    for start in range(0, len(ids), window):
        chunk = ids[start:start + window]
        if len(chunk) < 2:
            break
        with torch.no_grad():
            logits = model(torch.tensor([chunk], device=model.device)).logits[0].double().cpu()
        log_probs = torch.log_softmax(logits, dim=-1)
        total -= float(log_probs[torch.arange(len(chunk) - 1), torch.tensor(chunk[1:])].sum())
        count += len(chunk) - 1
    return math.exp(total / count)


@pytest.mark.points(3)
def test_perplexity_equals_transformers(f32_file, model, tokenizer):
    """perplexity() from llama.cpp's logits equals transformers' on held-out text, in one window and
    in windows of 64 tokens (each with a fresh cache), within 0.1 %."""
    ids = tokenizer(HELDOUT).input_ids[:200]
    llm = run.load(f32_file, n_ctx=256, logits_all=True, n_threads=1)
    try:
        for window in (None, 64):
            ours = run.perplexity(llm, ids, window=window)
            assert ours == pytest.approx(hf_perplexity(model, ids, window or 256), rel=1e-3), window
        with pytest.raises(ValueError, match="token_ids"):
            run.perplexity(llm, ids[:1])
        longer = tokenizer(HELDOUT + "\n" + HELDOUT).input_ids[:400]  # past the 256-token context
        assert run.perplexity(llm, longer) == pytest.approx(hf_perplexity(model, longer, 256), rel=1e-3), (
            "with no window, a text longer than the context is evaluated in windows of llm.n_ctx() tokens, "
            "as llama-perplexity -c does"
        )
    finally:
        llm.close()


def logged_mib(text: str, pattern: str) -> float:
    match = re.search(pattern, text)
    assert match, f"llama.cpp did not log {pattern!r}"
    return float(match.group(1))


@pytest.mark.points(2)
def test_memory_estimate_matches_llama_cpps_accounting(f32_file, model_dir, tmp_path, capfd, llama_shape):
    """estimate_memory's weights equal llama.cpp's model size (llama_model_size) for F32 and Q4_K_M
    files, and its KV cache equals the size llama.cpp logs for that context (f16 K and V); also for
    a Llama whose head_dim (32) is not hidden / heads (16)."""
    import llama_cpp
    from llama_cpp import Llama

    q4_k_m = llama_cpp_quantize(f32_file, tmp_path / "q4_k_m.gguf", "Q4_K_M")
    head_dim_file = reference_gguf(llama_shape("head_dim")[0], "f32")
    # the same model without key_length / value_length (older converters leave them out): llama.cpp
    # then takes embedding_length / head_count, with head_count_kv heads of that size
    arch = gguf.GGUFReader(f32_file).fields["general.architecture"].contents()
    no_lengths = tmp_path / "no_key_length.gguf"
    subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(f32_file), str(no_lengths),
                    "--remove-metadata", f"{arch}.attention.key_length",
                    "--remove-metadata", f"{arch}.attention.value_length", "--force"],
                   check=True, capture_output=True)
    for path, n_ctx in ((f32_file, 512), (q4_k_m, 1024), (head_dim_file, 512), (no_lengths, 512)):
        capfd.readouterr()
        llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=1, verbose=True)
        try:
            log = capfd.readouterr().err
            estimate = run.estimate_memory(path, n_ctx)
            assert estimate.weights == llama_cpp.llama_model_size(llm.model), path.name
            kv_mib = logged_mib(log, r"llama_kv_cache: size =\s*([\d.]+) MiB")
            assert estimate.kv_cache / 2**20 == pytest.approx(kv_mib, abs=0.01), path.name
            assert estimate.total == estimate.weights + estimate.kv_cache
        finally:
            llm.close()


class SlowGenerate:
    """The real ``Llama``, whose ``generate`` waits ``prefill_s`` before its first token and ``step_s``
    before each next one, and records (``time.perf_counter``) when it hands out each token."""

    def __init__(self, llm, prefill_s: float, step_s: float) -> None:
        self._llm, self.prefill_s, self.step_s = llm, prefill_s, step_s
        self.handed_out: list[float] = []

    def __getattr__(self, name: str):
        return getattr(self._llm, name)

    def generate(self, *args, **kwargs):
        for index, token in enumerate(self._llm.generate(*args, **kwargs)):
            time.sleep(self.prefill_s if index == 0 else self.step_s)
            self.handed_out.append(time.perf_counter())
            yield token


@pytest.mark.points(1)
def test_measure_speed_counts_tokens(llm, tokenizer):
    """measure_speed generates exactly the asked number of tokens (even past eos) and reports a
    positive prefill time and decode rate; every measurement runs the whole prompt through llama.cpp
    (its own counters: no prefix left cached from the last run); and with a generate that takes
    0.3 s to its first token and 0.15 s per token after it, the prefill is the 0.3 s and the decode
    rate is the tokens after the first over the time from the first to the last (about 6.7/s).
    (Speeds themselves are the bench's business.)"""
    import llama_cpp

    ids = tokenizer("The cat sat on the mat.").input_ids
    speed = run.measure_speed(llm, ids, new_tokens=12)
    assert speed.prompt_tokens == len(ids), (
        f"prompt_tokens must count the prompt's {len(ids)} tokens, got {speed.prompt_tokens}"
    )
    assert speed.new_tokens == 12, f"new_tokens must be the 12 tokens asked for, got {speed.new_tokens}"
    assert speed.prefill_s > 0 and 0 < speed.decode_tokens_per_s < float("inf")
    with pytest.raises(ValueError, match="new_tokens"):
        run.measure_speed(llm, ids, new_tokens=0)
    assert np.isfinite(speed.decode_tokens_per_s)
    for attempt in range(2):
        llama_cpp.llama_perf_context_reset(llm.ctx)
        run.measure_speed(llm, ids, new_tokens=4)
        evaluated = llama_cpp.llama_perf_context(llm.ctx).n_p_eval
        assert evaluated == len(ids), f"run {attempt + 1}: llama.cpp evaluated {evaluated} of {len(ids)} prompt tokens"
    slow = SlowGenerate(llm, prefill_s=0.3, step_s=0.15)
    start = time.perf_counter()
    speed = run.measure_speed(slow, ids, new_tokens=4)
    assert speed.new_tokens == 4, f"new_tokens must be the 4 tokens asked for, got {speed.new_tokens}"
    assert len(slow.handed_out) == 4, (
        f"measure_speed must generate exactly 4 tokens, generate handed out {len(slow.handed_out)}"
    )
    assert slow.prefill_s <= speed.prefill_s <= slow.handed_out[0] - start + 0.05
    expected = 3 / (slow.handed_out[-1] - slow.handed_out[0])
    assert speed.decode_tokens_per_s == pytest.approx(expected, rel=0.2), \
        f"decode rate {speed.decode_tokens_per_s:.2f}/s; 3 tokens after the first took {3 / expected:.3f} s"
