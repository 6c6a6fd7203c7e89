"""Task 8: fine-tuning with LoRA (peft) and in full."""

import pytest
import torch
from peft import PeftModel
from torch.optim.optimizer import register_optimizer_step_pre_hook
from transformers import AutoConfig, AutoModelForCausalLM

from .helpers import assert_lora_targets, finetune

pytestmark = pytest.mark.task(8)


@pytest.fixture(scope="module")
def examples():
    return finetune.load_instructions()


@pytest.fixture(scope="module")
def lora_run(trained_dir, trained_tokenizer, examples):
    """Learning the instructions needs the trained fixture (a random model would need far more steps)."""
    return finetune.finetune(trained_dir, trained_tokenizer, examples, method="lora", steps=60)


@pytest.fixture(scope="module")
def full_run(trained_dir, trained_tokenizer, examples):
    return finetune.finetune(trained_dir, trained_tokenizer, examples, method="full", steps=60)


def fresh(model_dir):
    """A fresh copy of the model with dropout off (GPT-2 has some), so train-mode losses compare
    with eval-mode ones."""
    config = AutoConfig.from_pretrained(model_dir)
    for name, value in config.to_dict().items():  # OPT and others read these floats directly
        if ("dropout" in name or "pdrop" in name) and isinstance(value, float):
            setattr(config, name, 0.0)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, config=config, dtype=torch.float32)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


@pytest.mark.points(1)
def test_build_example_masks_the_prompt(tokenizer, examples):
    """input_ids is the chat template of the whole exchange; labels are -100 exactly over the prompt."""
    if not tokenizer.chat_template:
        pytest.skip("this tokenizer has no chat template")
    for example in examples:
        ids, labels = finetune.build_example(tokenizer, example["prompt"], example["response"])
        chat = [{"role": "user", "content": example["prompt"]}, {"role": "assistant", "content": example["response"]}]
        assert ids == list(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"])
        prompt_len = len(tokenizer.apply_chat_template(chat[:1], tokenize=True, add_generation_prompt=True,
                                                       return_dict=True)["input_ids"])
        assert labels[:prompt_len] == [-100] * prompt_len
        assert labels[prompt_len:] == ids[prompt_len:]
        assert example["response"] in tokenizer.decode(labels[prompt_len:], skip_special_tokens=True)


@pytest.mark.points(1.5)
@pytest.mark.timeout(400)  # its fixture fine-tunes for 60 steps: ~20 s on 2 idle cores, minutes on busy ones
def test_lora_learns_the_instructions(lora_run, trained_tokenizer, examples):
    """LoRA trains only a small fraction of the weights; the loss falls by half or more; the model
    is back in eval mode and answers every training prompt with its target."""
    model, losses = lora_run
    assert isinstance(model, PeftModel)
    assert not any(module.training for module in model.modules()), "train must end with model.eval()"
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert 0 < trainable < 0.2 * total
    assert len(losses) == 60, f"one loss per training step: 60 expected, got {len(losses)}"
    assert losses[-1] <= losses[0] / 2, (
        f"LoRA must at least halve the loss in 60 steps: {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    for example in examples:
        assert finetune.answer(model, trained_tokenizer, example["prompt"]) == example["response"]


@pytest.mark.points(1)
@pytest.mark.timeout(400)  # its fixture fine-tunes for 60 steps: ~20 s on 2 idle cores, minutes on busy ones
def test_full_finetune_learns_the_instructions(full_run, trained_tokenizer, examples):
    model, losses = full_run
    assert not model.training
    assert len(losses) == 60, f"one loss per training step: 60 expected, got {len(losses)}"
    assert losses[-1] <= losses[0] / 2, (
        f"full fine-tuning must at least halve the loss in 60 steps: {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    for example in examples:
        assert finetune.answer(model, trained_tokenizer, example["prompt"]) == example["response"]


@pytest.mark.points(2)
def test_add_lora_adapts_every_linear_layer_with_rank_and_scale(model_dir):
    """add_lora puts rank-r adapters scaled alpha / r on every linear layer but the output layer,
    whatever the architecture names them; only those adapters train. On a mixture of experts
    (Mixtral) peft's "all-linear" also adapts the router and the fused experts, which are not
    torch Linear modules: adapting them too is allowed, anything else is not."""
    peft_model = finetune.add_lora(fresh(model_dir), r=4, alpha=32)
    assert_lora_targets(peft_model, lambda: fresh(model_dir), r=4, alpha=32)
    assert all(("lora_" in name) == p.requires_grad for name, p in peft_model.named_parameters())
    with pytest.raises(ValueError, match=r"\br\b"):
        finetune.add_lora(fresh(model_dir), r=0)


@pytest.mark.points(1)
def test_train_reports_the_loss_before_each_step(model_dir, tokenizer, examples):
    """losses[i] is the loss of the weights before step i, measured independently; frozen weights
    stay put; the model is left in eval mode; bad settings are refused before any step."""
    if not tokenizer.chat_template:
        pytest.skip("this tokenizer has no chat template")
    base = fresh(model_dir)
    frozen = {name: p.detach().clone() for name, p in base.named_parameters()}
    model = finetune.add_lora(base, r=2, alpha=4)
    batch = finetune.collate([finetune.build_example(tokenizer, e["prompt"], e["response"]) for e in examples[:3]],
                             tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    model.eval()
    with torch.no_grad():
        before = model(**batch).loss.item()
    losses = finetune.train(model, batch, 3, 1e-2)
    with torch.no_grad():
        after = model(**batch).loss.item()
    assert len(losses) == 3 and losses[0] == pytest.approx(before, rel=1e-4)
    assert after < losses[0] and after != pytest.approx(losses[-1], rel=1e-6), "the last loss is before step 3"
    assert not model.training
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[name.removeprefix("base_model.model.").replace(".base_layer", "")])
    for bad, name in [({"steps": 0}, "steps"), ({"learning_rate": 0.0}, "learning_rate")]:
        with pytest.raises(ValueError, match=name):
            finetune.train(model, batch, **{"steps": 1, "learning_rate": 1e-3, **bad})


@pytest.mark.points(1.5)
@pytest.mark.timeout(400)  # its fixture fine-tunes for 60 steps: ~20 s on 2 idle cores, minutes on busy ones
def test_adapters_save_load_and_merge(lora_run, trained_dir, trained_tokenizer, tmp_path):
    """A saved adapter reloads onto a fresh base with the same logits, in eval mode; merging keeps them."""
    model, _ = lora_run
    ids = torch.tensor([trained_tokenizer("What does llama.cpp read?").input_ids])
    with torch.no_grad():
        trained = model(input_ids=ids).logits
    model.save_pretrained(tmp_path / "adapter")
    reloaded = finetune.load_adapter(trained_dir, tmp_path / "adapter")
    assert not reloaded.training
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, trained, atol=1e-4, rtol=1e-4)
    merged = finetune.merge_adapter(reloaded)
    assert not isinstance(merged, PeftModel)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, trained, atol=1e-4, rtol=1e-4)


@pytest.mark.points(1)
def test_each_step_uses_the_gradient_of_its_own_loss(model_dir, tokenizer, examples):
    """Every optimizer step is taken with the gradient of the batch's loss at the weights of that
    moment (autograd's, computed here at each step from a hook torch calls before any optimizer
    step), not with gradients left over from earlier steps piling up."""
    if not tokenizer.chat_template:
        pytest.skip("this tokenizer has no chat template")
    model = fresh(model_dir)
    batch = finetune.collate([finetune.build_example(tokenizer, e["prompt"], e["response"]) for e in examples[:2]],
                             tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    learned = [p for p in model.parameters() if p.requires_grad]  # what the optimizer steps
    mismatches: list[str] = []
    steps_seen = []

    def check_gradients(optimizer, args, kwargs) -> None:
        steps_seen.append(len(steps_seen))
        expected = torch.autograd.grad(model(**batch).loss, learned)
        for index, (parameter, gradient) in enumerate(zip(learned, expected, strict=True)):
            if parameter.grad is None or not torch.allclose(parameter.grad, gradient, rtol=1e-3, atol=1e-6):
                mismatches.append(f"step {len(steps_seen) - 1}, parameter {index}")

    handle = register_optimizer_step_pre_hook(check_gradients)
    try:
        finetune.train(model, batch, 3, 1e-3)
    finally:
        handle.remove()
    assert len(steps_seen) == 3, "one optimizer step per training step"
    assert not mismatches, f"stale gradients at {mismatches[:3]}"
