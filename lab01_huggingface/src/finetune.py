# Student skeleton for lab01_huggingface: fill in each TODO, then run `course test lab01_huggingface`.
# (Generated from the reference solution by `course stubs`.)
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
    # TODO(lab01 task 8): one training example in the chat template, with the loss on the answer tokens only (README task 8; the docstring).
    raise NotImplementedError("lab01 task 8: build_example is not written yet (see lab01_huggingface/README.md, task 8)")


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
    # TODO(lab01 task 8): steps of AdamW on the trainable parameters only, recording each step's loss before its update, leaving the model in eval mode (README task 8; the docstring).
    raise NotImplementedError("lab01 task 8: train is not written yet (see lab01_huggingface/README.md, task 8)")


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
    # TODO(lab01 task 8): the model wrapped with fresh LoRA adapters of rank r and scale alpha / r on every linear layer but the output one, or the named ones (README task 8; peft's LoraConfig).
    raise NotImplementedError("lab01 task 8: add_lora is not written yet (see lab01_huggingface/README.md, task 8)")


def load_adapter(base_model_dir: str | Path, adapter_dir: str | Path) -> PeftModel:
    """A fresh base model from ``base_model_dir`` with the adapter saved in ``adapter_dir``
    (by ``peft_model.save_pretrained``), in eval mode."""
    # TODO(lab01 task 8): a fresh base model with a saved adapter attached, in eval mode, giving the saved model's logits (README task 8; peft's PeftModel.from_pretrained).
    raise NotImplementedError("lab01 task 8: load_adapter is not written yet (see lab01_huggingface/README.md, task 8)")


def merge_adapter(peft_model: PeftModel) -> PreTrainedModel:
    """Fold the LoRA update into the base weights: a plain model with the same outputs and no
    adapter overhead at inference."""
    # TODO(lab01 task 8): the LoRA update folded into the base weights: a plain model with the same outputs (README task 8; peft's merge docs).
    raise NotImplementedError("lab01 task 8: merge_adapter is not written yet (see lab01_huggingface/README.md, task 8)")


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
