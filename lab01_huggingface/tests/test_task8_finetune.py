"""Task 8: fine-tuning with LoRA (peft) and in full."""

import pytest
import torch
from peft import PeftModel

from .helpers import finetune

pytestmark = pytest.mark.task(8)


@pytest.fixture(scope="module")
def examples():
    return finetune.load_instructions()


@pytest.fixture(scope="module")
def lora_run(model_dir, tokenizer, examples):
    return finetune.finetune(model_dir, tokenizer, examples, method="lora", steps=60)


@pytest.fixture(scope="module")
def full_run(model_dir, tokenizer, examples):
    return finetune.finetune(model_dir, tokenizer, examples, method="full", steps=60)


@pytest.mark.points(2)
def test_build_example_masks_the_prompt(tokenizer, examples):
    """input_ids is the chat template of the whole exchange; labels are -100 exactly over the prompt."""
    for example in examples:
        ids, labels = finetune.build_example(tokenizer, example["prompt"], example["response"])
        chat = [{"role": "user", "content": example["prompt"]}, {"role": "assistant", "content": example["response"]}]
        assert ids == list(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"])
        prompt_len = len(tokenizer.apply_chat_template(chat[:1], tokenize=True, add_generation_prompt=True,
                                                       return_dict=True)["input_ids"])
        assert labels[:prompt_len] == [-100] * prompt_len
        assert labels[prompt_len:] == ids[prompt_len:]
        assert example["response"] in tokenizer.decode(labels[prompt_len:], skip_special_tokens=True)


@pytest.mark.points(3)
def test_lora_learns_the_instructions(lora_run, tokenizer, examples):
    """LoRA trains only a small fraction of the weights; the loss falls by half or more; the model
    then answers every training prompt with its target."""
    model, losses = lora_run
    assert isinstance(model, PeftModel)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert 0 < trainable < 0.2 * total
    assert losses[-1] <= losses[0] / 2
    for example in examples:
        assert finetune.answer(model, tokenizer, example["prompt"]) == example["response"]


@pytest.mark.points(2)
def test_full_finetune_learns_the_instructions(full_run, tokenizer, examples):
    model, losses = full_run
    assert losses[-1] <= losses[0] / 2
    for example in examples:
        assert finetune.answer(model, tokenizer, example["prompt"]) == example["response"]


@pytest.mark.points(3)
def test_adapters_save_load_and_merge(lora_run, model_dir, tokenizer, tmp_path):
    """A saved adapter reloads onto a fresh base with the same logits; merging keeps them too."""
    model, _ = lora_run
    ids = torch.tensor([tokenizer("What does llama.cpp read?").input_ids])
    with torch.no_grad():
        trained = model(input_ids=ids).logits
    model.save_pretrained(tmp_path / "adapter")
    reloaded = finetune.load_adapter(model_dir, tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, trained, atol=1e-4, rtol=1e-4)
    merged = finetune.merge_adapter(reloaded)
    assert not isinstance(merged, PeftModel)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, trained, atol=1e-4, rtol=1e-4)
