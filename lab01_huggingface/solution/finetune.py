"""Task 8: fine-tuning, with LoRA (peft) and in full.

A full fine-tune updates every weight: the optimizer keeps two more fp32 copies of each (Adam's
moments), so memory is several times the model. LoRA freezes the model and learns, for chosen
weight matrices W, a low-rank update W + (alpha / r) * B @ A with A: (r, in), B: (out, r), a tiny
fraction of the parameters; the adapter saves as a few KB and can be merged into W for serving.

The loss is computed on the response tokens only: the prompt's labels are -100, which
PyTorch's cross-entropy ignores, so the model learns to answer, not to repeat questions.

Readings: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"; the peft docs
(``LoraConfig``, ``get_peft_model``, ``PeftModel.from_pretrained``, ``merge_and_unload``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from shared.validation import check_at_least, check_in_range, check_not_empty

IGNORE_INDEX = -100  # labels with this value add nothing to the loss
DATA = Path(__file__).resolve().parent.parent / "data" / "instructions.jsonl"


def load_instructions(path: str | Path = DATA) -> list[dict[str, str]]:
    """The lab's instruction set: ``[{"prompt": ..., "response": ...}, ...]`` (given)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if not {"prompt", "response"} <= row.keys():
                raise ValueError(f"{path}:{number}: each line needs 'prompt' and 'response'")
            rows.append(row)
    return rows


def build_example(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str) -> tuple[list[int], list[int]]:
    """One training example: a user turn and the assistant's answer, in the chat template.

    Returns:
        ``(input_ids, labels)`` of equal length. ``input_ids`` is the chat template of
        ``[user: prompt, assistant: response]``; ``labels`` is -100 over the prompt part (the
        template rendered with ``add_generation_prompt=True`` for the user turn alone) and equal
        to ``input_ids`` over the answer (its end-of-turn token included).
    """
    # BEGIN SOLUTION task 8: one training example in the chat template, with the loss on the answer tokens only (README task 8; the docstring).
    # HINT task 8 level 1: fine-tuning here is plain PyTorch plus peft: the loss is the model's own causal-LM
    #   loss, counted only where labels are not -100. Reading: README task 8, Hu et al. 2021 (LoRA), peft's
    #   LoraConfig, get_peft_model, PeftModel.from_pretrained and merge_and_unload. The tests train 60 steps and
    #   expect the loss halved and every training prompt answered with its target.
    # HINT task 8 level 2: the prompt part is exactly what the template renders for the user turn
    #   with the generation prompt; the answer part is the rest of the full chat, its end-of-turn token
    #   included. The template holds its special tokens already: add none when tokenizing. If the prompt's ids
    #   are not a prefix of the full ids, the labels would be wrong: refuse rather than mask the wrong tokens.
    # HINT task 8 level 3: render the user-only chat (generation prompt on) and the full chat as
    #   text; tokenize both without special tokens; check the prefix; labels = IGNORE_INDEX for each prompt id,
    #   then the full ids from there on.
    user = [{"role": "user", "content": prompt}]
    full = [*user, {"role": "assistant", "content": response}]
    prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(full, tokenize=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    input_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    if input_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError("the chat template tokenizes the prompt differently inside the full chat")
    labels = [IGNORE_INDEX] * len(prompt_ids) + input_ids[len(prompt_ids):]
    return input_ids, labels
    # END SOLUTION


def collate(examples: list[tuple[list[int], list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch for training (given): ``input_ids``, ``attention_mask``, ``labels``, each
    ``(batch, longest)``; pads get label -100."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = [ids + [pad_token_id] * (width - len(ids)) for ids, _ in examples]
    labels = [lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in examples]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in examples]
    return {"input_ids": torch.tensor(input_ids), "attention_mask": torch.tensor(mask),
            "labels": torch.tensor(labels)}


def train(model: PreTrainedModel, batch: dict[str, torch.Tensor], steps: int, learning_rate: float) -> list[float]:
    """Train ``model``'s trainable parameters on one batch for ``steps`` AdamW steps.

    Args:
        model: put in train mode for the loop and back in eval mode at the end. Only parameters
            with ``requires_grad`` are optimized (LoRA freezes the rest).
        batch: from :func:`collate` (moved to the model's device here).
        steps: optimizer steps, at least 1.
        learning_rate: AdamW's learning rate, > 0.

    Returns:
        The loss of every step (floats), in order: ``losses[i]`` is the loss of the weights
        before step ``i``'s update.

    Raises:
        ValueError: ``steps`` < 1, ``learning_rate`` <= 0, or no trainable parameter.
    """
    # BEGIN SOLUTION task 8: steps of AdamW on the trainable parameters only, recording each step's loss before its update, leaving the model in eval mode (README task 8; the docstring).
    # HINT task 8 level 2: with LoRA most parameters are frozen: give the optimizer only those that
    #   require gradients, and refuse a model with none. The loss recorded for step i is the one computed before
    #   step i's update (the first is the untrained model's). Gradients must not pile up across steps. Train
    #   mode for the loop, eval mode at the end. Move the batch to the model's device.
    check_at_least("steps", steps, 1)
    check_in_range("learning_rate", learning_rate, 0.0, float("inf"), low_inclusive=False)
    batch = {name: tensor.to(model.device) for name, tensor in batch.items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters (requires_grad is False everywhere)")
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses
    # END SOLUTION


def add_lora(model: PreTrainedModel, r: int = 8, alpha: int = 16,
             target_modules: list[str] | None = None) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters of rank ``r`` and scale ``alpha / r`` on
    ``target_modules``, without dropout. Only the adapters are trainable afterwards.

    Args:
        target_modules: names of the layers to adapt; ``None`` means every linear layer of the
            model except its output layer, whatever the architecture calls them (a Llama's
            ``q_proj`` ... ``down_proj``, GPT-2's ``c_attn`` / ``c_proj`` / ``c_fc``, GPT-NeoX's
            ``query_key_value`` ...): peft's ``"all-linear"``.

    Raises:
        ValueError: ``r`` < 1 or ``alpha`` < 1.
    """
    # BEGIN SOLUTION task 8: the model wrapped with fresh LoRA adapters of rank r and scale alpha / r on every linear layer but the output one, or the named ones (README task 8; peft's LoraConfig).
    # HINT task 8 level 2: peft decides which layers are 'every linear layer but the output layer' for
    #   any architecture (read LoraConfig's target_modules options); the scale alpha / r is peft's own
    #   definition from lora_alpha; no dropout, so that training is deterministic.
    check_at_least("r", r, 1)
    check_at_least("alpha", alpha, 1)
    config = LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=alpha, lora_dropout=0.0,
                        target_modules=target_modules or "all-linear")
    return get_peft_model(model, config)
    # END SOLUTION


def load_adapter(base_model_dir: str | Path, adapter_dir: str | Path) -> PeftModel:
    """A fresh base model from ``base_model_dir`` with the adapter saved in ``adapter_dir``
    (by ``peft_model.save_pretrained``), in eval mode."""
    # BEGIN SOLUTION task 8: a fresh base model with a saved adapter attached, in eval mode, giving the saved model's logits (README task 8; peft's PeftModel.from_pretrained).
    # HINT task 8 level 2: the adapter folder holds only the adapter: load the base from its own
    #   folder first, in float32 as the tests' models are.
    base = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(base, adapter_dir).eval()
    # END SOLUTION


def merge_adapter(peft_model: PeftModel) -> PreTrainedModel:
    """Fold the LoRA update into the base weights: a plain model with the same outputs and no
    adapter overhead at inference."""
    # BEGIN SOLUTION task 8: the LoRA update folded into the base weights: a plain model with the same outputs (README task 8; peft's merge docs).
    # HINT task 8 level 2: peft merges and unwraps in one call; the result is no longer a
    #   PeftModel.
    return peft_model.merge_and_unload()
    # END SOLUTION


def finetune(model_dir: str | Path, tokenizer: PreTrainedTokenizerBase, examples: list[dict[str, str]],
             method: str = "lora", steps: int = 60, learning_rate: float | None = None,
             ) -> tuple[PreTrainedModel, list[float]]:
    """Load a fresh model and fine-tune it on ``examples`` with ``method`` "lora" or "full" (given).

    Returns:
        ``(model, losses)``: a PeftModel for "lora", the plain model for "full".
    """
    check_not_empty("examples", examples)
    if method not in {"lora", "full"}:
        raise ValueError(f"method must be 'lora' or 'full', got {method!r}")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if method == "lora":
        model = add_lora(model)
    batch = collate([build_example(tokenizer, e["prompt"], e["response"]) for e in examples],
                    tokenizer.pad_token_id)
    rate = learning_rate or (1e-2 if method == "lora" else 1e-3)
    return model, train(model, batch, steps, rate)


def answer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, max_new_tokens: int = 32) -> str:
    """The model's greedy answer to a user prompt, through the chat template (given)."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True).to(model.device)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
