"""Task 5: batched greedy generation with left padding."""

import copy

import pytest
import torch

from .helpers import PROMPTS, ForwardRecorder, batching, hf_greedy, pad_token_id

pytestmark = pytest.mark.task(5)


@pytest.mark.points(1)
def test_left_pad_matches_the_tokenizer(tokenizer):
    """left_pad gives what tokenizer.pad(padding_side='left') gives (a tokenizer without a pad token
    pads with its eos token, as transformers' docs do)."""
    sequences = [tokenizer(p).input_ids for p in PROMPTS]
    ids, mask = batching.left_pad(sequences, pad_token_id(tokenizer))
    left = copy.deepcopy(tokenizer)
    left.padding_side = "left"
    if left.pad_token_id is None:
        left.pad_token_id = pad_token_id(tokenizer)
    oracle = left.pad({"input_ids": sequences}, padding=True, return_tensors="pt")
    assert torch.equal(ids, oracle["input_ids"]) and torch.equal(mask, oracle["attention_mask"])
    assert ids.dtype == torch.int64, f"input_ids must be int64 like the tokenizer's, got {ids.dtype}"
    assert mask.dtype == torch.int64, f"attention_mask must be int64 like the tokenizer's, got {mask.dtype}"


@pytest.mark.points(5)
def test_each_row_equals_its_unbatched_greedy_output(model, tokenizer):
    """Every row of a batch of prompts of different lengths equals transformers' greedy output for it
    alone, including rows that stop at eos while others go on."""
    prompts = [tokenizer(p).input_ids for p in PROMPTS]
    with ForwardRecorder(model) as calls:
        rows = batching.batch_greedy_generate(model, prompts, 24, pad_token_id(tokenizer))
    expected = [hf_greedy(model, ids, 24) for ids in prompts]
    assert rows == expected
    assert len(calls.fed) <= 24, "one forward pass per step for the whole batch, not one per row"


@pytest.mark.points(2)
def test_rows_that_finish_early_stop_there(model, tokenizer):
    """A row stops at its own eos while the others go on, whatever the eos convention: one id,
    a list of ids (a row stops at any of them), or id 0."""
    prompts = [tokenizer(p).input_ids for p in PROMPTS]
    first = [hf_greedy(model, ids, 3, eos_token_id=-1) for ids in prompts]
    stop = first[0][0]  # row 0's first token becomes "eos"
    rows = batching.batch_greedy_generate(model, prompts, 16, pad_token_id(tokenizer), eos_token_id=stop)
    assert rows[0] == [stop]
    assert rows == [hf_greedy(model, ids, 16, eos_token_id=stop) for ids in prompts]
    stops = [first[1][2], first[2][1]]  # rows 1 and 2 stop at their 3rd and 2nd token (or earlier)
    rows = batching.batch_greedy_generate(model, prompts, 16, pad_token_id(tokenizer), eos_token_id=stops)
    assert rows == [hf_greedy(model, ids, 16, eos_token_id=stops) for ids in prompts]
    assert len(rows[1]) <= 3, f"row 1 must stop at its stop token (3rd token or earlier), got {len(rows[1])} tokens"
    assert len(rows[2]) <= 2, f"row 2 must stop at its stop token (2nd token or earlier), got {len(rows[2])} tokens"
    rows = batching.batch_greedy_generate(model, prompts, 16, pad_token_id(tokenizer), eos_token_id=0)
    assert rows == [hf_greedy(model, ids, 16, eos_token_id=0) for ids in prompts], "eos_token_id=0 is an id"


@pytest.mark.points(1)
def test_a_batch_of_one_is_plain_greedy(model, tokenizer):
    ids = tokenizer(PROMPTS[2]).input_ids
    assert batching.batch_greedy_generate(model, [ids], 16, pad_token_id(tokenizer)) == [hf_greedy(model, ids, 16)]


@pytest.mark.points(2)
def test_bad_batches_name_the_argument(model, tokenizer):
    """No prompts, an empty prompt (its index named) or max_new_tokens < 1 raise ValueError."""
    ids = tokenizer("The cat").input_ids
    with pytest.raises(ValueError, match=r"sequences|prompts"):
        batching.batch_greedy_generate(model, [], 5, pad_token_id(tokenizer))
    with pytest.raises(ValueError, match=r"\[1\]"):
        batching.batch_greedy_generate(model, [ids, []], 5, pad_token_id(tokenizer))
    with pytest.raises(ValueError, match="max_new_tokens"):
        batching.batch_greedy_generate(model, [ids], 0, pad_token_id(tokenizer))
