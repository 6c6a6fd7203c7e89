"""What several lab01 test files share: the modules under test and HF's own greedy output."""

from __future__ import annotations

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
