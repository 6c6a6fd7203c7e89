"""Instructor-only (task 6, server): a batch of input_ids with prompt logprobs from position 0, the
greedy-token select, and an array schema through OpenAI's response_format: what the visible tests
never send. (SGLang's unconditional_likelihood_normalized select cannot be tested: RuntimeEndpoint
sends its input_ids without logprob_start_len, and SGLang's own server, like this one, then returns
no prompt logprobs, so the client fails on an empty list.)"""

import json

import httpx
import jsonschema
import pytest
import torch

from ..helpers import fixture_model
from ..test_task6_sglang_server import endpoint, hf_logprobs, local, server

__all__ = ["endpoint", "fixture_model", "local", "server"]

LANGS = {"type": "array", "items": {"enum": ["Lima", "Seoul", "Tokyo"]}, "minItems": 2, "maxItems": 3}


@pytest.mark.task(6)
@pytest.mark.sglang
@pytest.mark.points(2)
def test_input_ids_batch_logprobs_unconditional_select_and_array_schema(server, endpoint, local, fixture_model):
    import openai
    import sglang as sgl

    model, tokenizer = fixture_model
    url, _ = server
    batch = [tokenizer("Seoul is a city in").input_ids, tokenizer("<|user|>\nHello").input_ids]
    body = {"input_ids": batch, "sampling_params": {"max_new_tokens": 4, "temperature": 0, "ignore_eos": True},
            "return_logprob": True, "logprob_start_len": 0, "return_text_in_logprobs": True}
    with httpx.Client(base_url=url, timeout=120) as client:
        answers = client.post("/generate", json=body).json()
    assert isinstance(answers, list) and len(answers) == 2
    for ids, answer in zip(batch, answers, strict=True):
        with torch.no_grad():
            expected = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                      do_sample=False, max_new_tokens=4, pad_token_id=tokenizer.pad_token_id)
        new = expected[0, len(ids):].tolist()
        assert answer["output_ids"] == new and answer["meta_info"]["finish_reason"]["type"] == "length"
        prompt = answer["meta_info"]["input_token_logprobs"]
        assert [t for _, t, _ in prompt] == ids and prompt[0][0] is None
        assert [lp for lp, _, _ in prompt[1:]] == pytest.approx(hf_logprobs(model, ids), abs=1e-3)
        assert [text for _, _, text in prompt] == [tokenizer.decode([t]) for t in ids]
        output = answer["meta_info"]["output_token_logprobs"]
        assert [lp for lp, _, _ in output] == pytest.approx(hf_logprobs(model, ids + new)[-4:], abs=1e-3)

    @sgl.function
    def pick(s):
        s += "The capital of Peru is "
        s += sgl.select("city", choices=["Lima", "Tokyo", "x"], choices_method=sgl.greedy_token_selection)

    state = pick.run(backend=endpoint)
    assert state["city"] in ("Lima", "Tokyo", "x") and len(state.get_meta_info("city")["input_token_logprobs"]) == 3

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    for temperature in (0.0, 1.0):
        completion = client.chat.completions.create(
            model="fixture", messages=[{"role": "user", "content": "Name two cities."}], temperature=temperature,
            max_tokens=30, response_format={"type": "json_schema", "json_schema": {"name": "cities", "schema": LANGS}})
        jsonschema.validate(json.loads(completion.choices[0].message.content), LANGS)
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="fixture", messages=[], response_format={
            "type": "json_schema", "json_schema": {"name": "cities", "schema": LANGS}})
