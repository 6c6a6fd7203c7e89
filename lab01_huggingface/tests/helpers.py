"""What several lab01 test files share: the modules under test and HF's own greedy output."""

from __future__ import annotations

import pytest
import torch

from shared.impl import lab_module

LAB = "lab01_huggingface"
loading = lab_module(LAB, "loading")
tokens = lab_module(LAB, "tokens")
generation = lab_module(LAB, "generation")
sampling = lab_module(LAB, "sampling")
batching = lab_module(LAB, "batching")
streaming = lab_module(LAB, "streaming")
speculative = lab_module(LAB, "speculative")
finetune = lab_module(LAB, "finetune")
measure = lab_module(LAB, "measure")

#: Prompts of different lengths and kinds: plain text, a JSON prefix, a chat, non-ASCII.
PROMPTS = [
    "The cat",
    '{"name": "',
    "Ana lives in Lima and works as a",
    "Café crème 🍕",
    "A language model predicts the next token from the tokens before it. The cache keeps",
]


def pad_token_id(tokenizer) -> int:
    """The id to left-pad with: the tokenizer's pad token, else (GPT-2, Llama 2 and 3 have none) its
    eos token, as transformers' docs do (``tokenizer.pad_token = tokenizer.eos_token``). The mask
    hides every pad, so any id would do; never None, which no tensor can hold."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def assert_lora_targets(peft_model, fresh_base, r: int, alpha: int) -> None:
    """``peft_model`` adapts every linear layer of the base but its output layer (torch ``Linear``
    or GPT-2's ``Conv1D``), with rank ``r`` and scale ``alpha / r``, and nothing else except what
    peft's own ``"all-linear"`` adapts on that architecture too (on a Mixtral: the router and the
    fused experts, which are not ``Linear`` modules), with the rank and scale peft gives them.

    Args:
        peft_model: what ``add_lora(fresh_base(), r, alpha)`` returned.
        fresh_base: builds a new, unwrapped copy of the base model.
    """
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer
    from transformers.pytorch_utils import Conv1D

    def lora_layers(model) -> dict:
        return {name.removeprefix("base_model.model."): module for name, module in model.named_modules()
                if isinstance(module, LoraLayer)}

    base = fresh_base()
    output_layer = base.get_output_embeddings()
    linear = {name for name, module in base.named_modules()
              if isinstance(module, (torch.nn.Linear, Conv1D)) and module is not output_layer}
    adapted = lora_layers(peft_model)
    assert linear <= set(adapted), f"not adapted: {sorted(linear - set(adapted))}"
    by_peft = {}
    if set(adapted) != linear:  # what peft itself adapts for "all-linear" on this architecture
        # leak-check: allowed, peft's own resolution of "all-linear" is the oracle for the extra layers
        by_peft = lora_layers(get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear")))
        assert set(adapted) <= set(by_peft), f"adapted beyond the linear layers: {sorted(set(adapted) - set(by_peft))}"
    for name, module in adapted.items():
        if name in linear:
            assert module.r["default"] == r and module.scaling["default"] == pytest.approx(alpha / r), name
            assert module.lora_A["default"].weight.shape[0] == r, name
        else:  # a router or fused experts (their lora_A holds r rows per expert)
            assert (module.r["default"], module.scaling["default"]) == \
                (by_peft[name].r["default"], pytest.approx(by_peft[name].scaling["default"])), name


def hf_greedy(model, prompt_ids: list[int], max_new_tokens: int, **kwargs) -> list[int]:
    """The oracle: transformers' own ``generate`` (greedy unless ``do_sample=True``), new tokens only."""
    inputs = torch.tensor([prompt_ids], device=model.device)
    kwargs = {"do_sample": False, "pad_token_id": model.generation_config.pad_token_id, **kwargs}
    with torch.no_grad():
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=max_new_tokens,
                             **kwargs)
    return out[0, len(prompt_ids):].tolist()


class ForwardRecorder:
    """Counts a model's forward calls and records how many new tokens each one was fed."""

    def __init__(self, model) -> None:
        self.fed: list[int] = []
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.fed.append(int(ids.shape[1]))

    def __enter__(self) -> ForwardRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()
