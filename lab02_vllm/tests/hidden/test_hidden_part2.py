"""Instructor-only tests for part 2 (left out of the student edition): inputs the visible tests
never send — token-id prompts, echo, system messages, stop lists, TGI's compat route and stop
sequences, other model shapes for the planner, and the milestone command end to end."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.impl import current_impl, lab_module

from ..serving_fixtures import (  # noqa: F401
    course_server_fixture,
    hf_greedy_text,
    raises_server_errors,
    require_chat_template,
)

deploy = lab_module("lab02_vllm", "deploy")
milestone = lab_module("lab02_vllm", "milestone")
openai = pytest.importorskip("openai")


def name_of(server) -> str:
    return server.app.state.course.model_name


@pytest.mark.task(8)
@pytest.mark.points(1)
@raises_server_errors
def test_token_id_prompts_echo_system_messages_and_stop_lists(course_server, model, tokenizer):
    client = openai.OpenAI(base_url=course_server.base_url, api_key="none", max_retries=0)
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(10, len(tokenizer), (7,), generator=generator).tolist()
    expected, _ = hf_greedy_text(model, tokenizer, ids, 10)
    reply = client.completions.create(model=name_of(course_server), prompt=ids, max_tokens=10, temperature=0)
    assert reply.choices[0].text == expected, "a token-id prompt must give the same text as transformers"
    assert reply.usage.prompt_tokens == 7, "usage.prompt_tokens must count the prompt's token ids (7)"
    echoed = client.completions.create(model=name_of(course_server), prompt="The cat", max_tokens=5, temperature=0,
                                       echo=True)
    assert echoed.choices[0].text.startswith("The cat")
    require_chat_template()  # the rest is chat
    messages = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Who is Ana?"}]
    chat_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    text, _ = hf_greedy_text(model, tokenizer, list(chat_ids), 7)
    chat = client.chat.completions.create(model=name_of(course_server), messages=messages, temperature=0,
                                          max_completion_tokens=7)
    assert chat.choices[0].message.content == text, "the chat reply must equal transformers' text for the chat template"
    assert chat.usage.prompt_tokens == len(chat_ids), (
        "usage.prompt_tokens must count the chat template's tokens, system message included"
    )
    full, _ = hf_greedy_text(model, tokenizer, tokenizer("Ana lives in").input_ids, 20)
    words = full.split()
    if len(words) >= 3:
        cut = client.completions.create(model=name_of(course_server), prompt="Ana lives in", max_tokens=20,
                                        temperature=0, stop=["@@never@@", words[2]])
        assert cut.choices[0].text == full[:full.index(words[2])] and cut.choices[0].finish_reason == "stop"


@pytest.mark.task(9)
@pytest.mark.points(1)
@raises_server_errors
def test_tgi_compat_route_and_stop_sequences(course_server, model, tokenizer):
    prompt = "The cat sat on the"
    full, _ = hf_greedy_text(model, tokenizer, tokenizer(prompt).input_ids, 16)
    compat = httpx.post(course_server.url + "/", json={"inputs": prompt, "parameters": {"max_new_tokens": 16}},
                        timeout=60)
    assert compat.status_code == 200 and compat.json()[0]["generated_text"] == full
    words = full.split()
    if len(words) >= 2:
        stop = words[1]
        body = {"inputs": prompt, "parameters": {"max_new_tokens": 16, "stop": [stop], "details": True}}
        answer = httpx.post(course_server.url + "/generate", json=body, timeout=60).json()
        assert answer["generated_text"] == full[:full.index(stop)]
        assert answer["details"]["finish_reason"] == "stop_sequence"
    events = []
    with httpx.stream("POST", course_server.url + "/generate_stream",
                      json={"inputs": prompt, "parameters": {"max_new_tokens": 6, "return_full_text": True}},
                      timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert events[-1]["generated_text"] == prompt + hf_greedy_text(model, tokenizer, tokenizer(prompt).input_ids, 6)[0]
    assert [e["index"] for e in events] == list(range(1, len(events) + 1))


#: Mistral-7B-v0.1 and Llama-3.2-1B (tied embeddings, head_dim 64), as published.
MISTRAL_7B = {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 32000,
              "max_position_embeddings": 32768, "tie_word_embeddings": False, "sliding_window": 4096}
LLAMA32_1B = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
              "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
              "max_position_embeddings": 131072, "tie_word_embeddings": True}


@pytest.mark.task(11)
@pytest.mark.points(1)
def test_planner_on_other_shapes():
    from transformers import AutoConfig, AutoModelForCausalLM

    for config in (MISTRAL_7B, LLAMA32_1B):
        with torch.device("meta"):
            hf = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
        assert deploy.ModelShape.from_config(config).parameters() == hf.num_parameters()
    small = deploy.ModelShape.from_config(LLAMA32_1B)
    assert deploy.kv_bytes_per_token(small, "bfloat16") == 2 * 16 * 8 * 64 * 2
    assert deploy.kv_bytes_per_token(small, "bfloat16", tensor_parallel_size=32) == 2 * 16 * 1 * 64 * 2
    config = deploy.DeployConfig(model="m", shape=small, tensor_parallel_size=16)
    assert config.tensor_parallel_size == 16  # 32 heads split in 16; 8 KV heads replicated twice
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        deploy.DeployConfig(model="m", shape=small, tensor_parallel_size=12)

    @settings(max_examples=40, deadline=None)
    @given(gib=st.integers(1, 200), utilization=st.floats(0.3, 1.0), block=st.sampled_from([8, 16, 32, 128]),
           seq_len=st.integers(1, 100_000))
    def planned(gib, utilization, block, seq_len):
        try:
            plan = deploy.plan_kv_cache(small, gib * 2**30, utilization, dtype="bfloat16", block_size=block,
                                        activation_reserve_bytes=2**30)
        except ValueError as error:
            assert "gpu_memory_utilization" in str(error)
            assert int(gib * 2**30 * utilization) - deploy.weight_bytes(small, "bfloat16") - 2**30 <= 0
            return
        assert plan.num_blocks == plan.kv_cache_bytes // (block * plan.bytes_per_token)
        assert plan.max_concurrent_sequences(seq_len) == plan.num_blocks // -(-seq_len // block)

    planned()


@pytest.mark.task(12)
@pytest.mark.points(1)
@pytest.mark.timeout(600)
def test_the_milestone_command_end_to_end(tmp_path, model_dir):
    """``course milestone --backend course`` on the fixture (or ``--model``, if the engine runs it:
    ``model_dir`` skips otherwise): a server starts, is loaded, stops; the report is complete."""
    out = tmp_path / "report.json"
    code = milestone.main(["--backend", "course", "--impl", current_impl(), "--requests", "6", "--concurrency", "3",
                           "--max-tokens", "6", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["completed"] == 6 and report["failed"] == 0 and report["output_tokens"] == 36
    assert report["backend"] == "course" and report["ttft_p99_s"] >= report["ttft_mean_s"] > 0
