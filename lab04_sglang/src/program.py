# Student skeleton for lab04_sglang: fill in each TODO, then run `course test lab04_sglang`.
# (Generated from the reference solution by `course stubs`.)
"""Task 5: structured generation programs, in SGLang's frontend language, run in-process.

An SGLang program is a Python function over a state ``s``: ``s += "text"`` appends a prompt,
``s += gen("name", ...)`` asks the model to continue and stores the result under ``name``,
``s += select("name", choices)`` picks one choice by log-probability, ``user`` / ``assistant``
wrap their content in the model's chat template, and ``s.fork(n)`` branches the state so that
several continuations share one prefix. The runtime turns each call into a request; the radix
cache (task 4) makes the shared prefixes nearly free: every ``gen`` sends the *whole* text so
far, and only its new tail is computed.

The names mirror SGLang's own (``sglang.function``, ``gen``, ``select``, ``user``,
``assistant``, ``system``, ``set_default_backend``, ``state.text()``, ``state.messages()``,
``state["name"]``), so a program written here runs against a real SGLang server by changing
the backend line (task 6). Defaults follow SGLang's ``run``: 128 new tokens, temperature 1.0.

Readings: the SGLang paper (arXiv 2312.07104), section 2 and figure 2; SGLang's docs,
"Frontend language"; ``sglang/lang/api.py`` and ``sglang/lang/interpreter.py``.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shared.validation import check_at_least, check_not_empty

from .grammar import Automaton, compile_constraint
from .masks import TokenMasker, Vocabulary
from .prefix_cache import PrefixCachingGenerator

#: ``choices_method`` values of ``select`` (SGLang's default is the normalised one).
token_length_normalized = "token_length_normalized"
summed_logprob = "summed_logprob"
CHOICES_METHODS = (token_length_normalized, summed_logprob)


# --------------------------------------------------------------------------------------------
# Expressions: what ``s += ...`` accepts (given)


class Expr:
    """Something a state can run: text, a ``gen``, a ``select``, a role, or a list of those."""

    def __add__(self, other: Any) -> ExprList:
        return ExprList([self, other])

    def __radd__(self, other: Any) -> ExprList:
        return ExprList([other, self])


class ExprList(Expr):
    def __init__(self, items: list[Any]) -> None:
        self.items = [part for item in items
                      for part in (item.items if isinstance(item, ExprList) else [item])]


class Gen(Expr):
    """``gen(name, max_tokens, stop, temperature, regex= | json_schema=)``, checked when built."""

    def __init__(self, name: str | None, max_tokens: int | None, stop: str | list[str] | None,
                 temperature: float | None, regex: str | None, json_schema: Any | None) -> None:
        if regex is not None and json_schema is not None:
            raise ValueError("gen takes regex or json_schema, not both")
        if max_tokens is not None:
            check_at_least("max_tokens", max_tokens, 1)
        if temperature is not None:
            check_at_least("temperature", temperature, 0.0)
        self.name, self.max_tokens, self.temperature = name, max_tokens, temperature
        self.stop = [stop] if isinstance(stop, str) else list(stop or [])
        if any(not s for s in self.stop):
            raise ValueError("stop strings must not be empty")
        self.regex, self.json_schema = regex, json_schema
        # Compile now: a bad pattern fails when the program is written, before any generation.
        self.automaton: Automaton | None = compile_constraint(regex, json_schema)


class Select(Expr):
    def __init__(self, name: str | None, choices: list[str], temperature: float, choices_method: str) -> None:
        if not choices:
            raise ValueError("select needs at least one of choices")
        if any(not isinstance(c, str) or not c for c in choices):
            raise ValueError(f"choices must be non-empty strings, got {choices!r}")
        if choices_method not in CHOICES_METHODS:
            raise ValueError(f"choices_method must be one of {CHOICES_METHODS}, got {choices_method!r}")
        self.name, self.choices, self.temperature, self.method = name, list(choices), temperature, choices_method


class Role(Expr):
    def __init__(self, role: str, content: Any = None) -> None:
        self.role, self.content = role, content


def gen(name: str | None = None, max_tokens: int | None = None, stop: str | list[str] | None = None,
        temperature: float | None = None, regex: str | None = None, json_schema: Any | None = None,
        choices: list[str] | None = None) -> Expr:
    """Generate text (SGLang's ``gen``); with ``choices`` it is a ``select``.

    ``json_schema`` may be a dict, JSON text or a pydantic model class."""
    if choices is not None:
        return Select(name, choices, temperature or 0.0, token_length_normalized)
    return Gen(name, max_tokens, stop, temperature, regex, json_schema)


def select(name: str | None = None, choices: list[str] | None = None, temperature: float = 0.0,
           choices_method: str = token_length_normalized) -> Select:
    """Choose one of ``choices`` by the model's log-probability of each (SGLang's ``select``)."""
    return Select(name, choices or [], temperature, choices_method)


def system(content: Any = None) -> Role:
    return Role("system", content)


def user(content: Any = None) -> Role:
    return Role("user", content)


def assistant(content: Any = None) -> Role:
    return Role("assistant", content)


# --------------------------------------------------------------------------------------------
# The backend: a model, its tokenizer, the chat template and the radix cache


def role_markers(tokenizer: Any) -> dict[str, tuple[str, str]]:
    """``{role: (text before the content, text after it)}`` read off the tokenizer's chat template.

    The template is rendered around a sentinel; what it puts before the first message (a bos
    token) is left out, because the tokenizer adds it when the text is encoded."""
    sentinel, first = "\x00SENTINEL\x00", {"role": "user", "content": "A"}
    markers = {}
    for role in ("system", "user", "assistant"):
        if not tokenizer.chat_template:
            markers[role] = (f"{role.capitalize()}: ", "\n")
            continue
        # The turn as the template writes it after another one (so without the bos at the start).
        alone = tokenizer.apply_chat_template([first], tokenize=False)
        both = tokenizer.apply_chat_template([first, {"role": role, "content": sentinel}], tokenize=False)
        before, _, after = both.removeprefix(alone).partition(sentinel)
        markers[role] = (before, after)
    return markers


class LocalBackend:
    """Runs programs in this process on a transformers model, with a shared radix cache.

    Args:
        model: a causal LM in eval mode, or a model folder to load.
        tokenizer: its tokenizer (loaded from the folder when ``model`` is a path).
        max_cached_tokens: the radix cache's capacity in tokens (unbounded by default).
    """

    def __init__(self, model: Any, tokenizer: Any = None, max_cached_tokens: int | None = None) -> None:
        if isinstance(model, (str, Path)):
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model)
            model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        if tokenizer is None:
            raise ValueError("tokenizer is needed when model is a loaded model")
        self.model, self.tokenizer = model, tokenizer
        self.engine = PrefixCachingGenerator(model, max_cached_tokens=max_cached_tokens)
        self.roles = role_markers(tokenizer)
        self._vocabulary: Vocabulary | None = None  # built on the first constrained gen
        self._maskers: OrderedDict[int, TokenMasker] = OrderedDict()  # by id(automaton), most recent last

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text).input_ids

    def masker(self, automaton: Automaton) -> TokenMasker:
        """One masker per automaton, so its cached masks serve every later call with the same
        automaton (``grammar.compile_constraint`` hands out the same one for the same pattern).
        The 64 most recently used are kept: a long-running server must not grow without bound."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary(self.tokenizer, self.model.config.vocab_size,
                                          self.model.generation_config.eos_token_id)
        # A masker holds its automaton, so an id in the table cannot be reused by another one.
        key = id(automaton)
        if key not in self._maskers:
            self._maskers[key] = TokenMasker(automaton, self._vocabulary)
            if len(self._maskers) > 64:
                self._maskers.popitem(last=False)
        self._maskers.move_to_end(key)
        return self._maskers[key]


_default_backend: LocalBackend | None = None


def set_default_backend(backend: Any) -> None:
    """The backend that ``run`` uses when none is passed (SGLang's name)."""
    global _default_backend
    _default_backend = backend


# --------------------------------------------------------------------------------------------
# The state


class ProgramState:
    """The running text of a program, its named results and its chat messages."""

    def __init__(self, backend: LocalBackend, defaults: dict[str, Any]) -> None:
        self.backend, self.defaults = backend, defaults
        self._text = ""
        self.variables: dict[str, Any] = {}
        self.meta_info: dict[str, dict[str, Any]] = {}
        self._messages: list[dict[str, str]] = []
        self._role: tuple[str, int] | None = None  # the open role and where its content starts

    # reading ---------------------------------------------------------------------------------

    def text(self) -> str:
        return self._text

    def messages(self) -> list[dict[str, str]]:
        return [dict(m) for m in self._messages]

    def __getitem__(self, name: str) -> Any:
        return self.variables[name]

    def get_var(self, name: str) -> Any:
        return self.variables[name]

    def get_meta_info(self, name: str) -> dict[str, Any]:
        return self.meta_info[name]

    # running ---------------------------------------------------------------------------------

    def __iadd__(self, expr: Any) -> ProgramState:
        self.run_expr(expr)
        return self

    def run_expr(self, expr: Any) -> None:
        if isinstance(expr, str):
            self._text += expr
        elif isinstance(expr, ExprList):
            for item in expr.items:
                self.run_expr(item)
        elif isinstance(expr, Role):
            self.role_begin(expr.role)
            if expr.content is not None:
                self.run_expr(expr.content)
            self.role_end(expr.role)
        elif isinstance(expr, Gen):
            self.run_gen(expr)
        elif isinstance(expr, Select):
            self.run_select(expr)
        else:
            raise TypeError(f"s += expects text, gen, select or a role, got {type(expr).__name__}")

    def role_begin(self, role: str) -> None:
        """Open a chat turn: append the template's text before ``role``'s content.

        Raises:
            ValueError: another role is still open (roles do not nest; the message names both).
        """
        # TODO(lab04 task 5): open a chat turn with the chat template's text before the role's content, refusing a nested role (README task 5; the docstring).
        raise NotImplementedError("lab04 task 5: role_begin is not written yet (see lab04_sglang/README.md, task 5)")

    def role_end(self, role: str) -> None:
        """Close the turn: record the message ``{"role", "content"}``, append the closing marker.

        Raises:
            ValueError: ``role`` is not the open role (or no role is open).
        """
        # TODO(lab04 task 5): close the open turn: record its message, append the template's text after it (README task 5; the docstring).
        raise NotImplementedError("lab04 task 5: role_end is not written yet (see lab04_sglang/README.md, task 5)")

    @contextlib.contextmanager
    def _role_block(self, role: str) -> Iterator[None]:
        self.role_begin(role)
        yield
        self.role_end(role)

    def system(self) -> contextlib.AbstractContextManager[None]:
        return self._role_block("system")

    def user(self) -> contextlib.AbstractContextManager[None]:
        return self._role_block("user")

    def assistant(self) -> contextlib.AbstractContextManager[None]:
        return self._role_block("assistant")

    def run_gen(self, call: Gen) -> None:
        """Continue the text with the model; store the result under ``call.name``.

        The whole text so far is the prompt (the radix cache makes its known prefix free); the
        result is the new text without eos, cut before the first stop string; a ``json_schema``
        result is stored as text (parse it with ``json.loads``). A named call also records
        ``meta_info[name] = {"prompt_tokens", "completion_tokens", "cached_tokens"}`` (SGLang's
        names; ``cached_tokens`` is what the radix cache supplied)."""
        # TODO(lab04 task 5): continue the text with the model as SGLang's gen does, honouring the call's settings, constraint and stop strings, and record the result and its meta_info (README task 5; the docstring).
        raise NotImplementedError("lab04 task 5: run_gen is not written yet (see lab04_sglang/README.md, task 5)")

    def run_select(self, call: Select) -> None:
        """Append the choice the model finds most likely; store it under ``call.name``.

        Each choice is scored by the log-probabilities of its tokens after the text so far:
        summed (``summed_logprob``, which favours short choices) or divided by the token count
        (``token_length_normalized``, SGLang's default); on a tie the earlier choice wins. A named
        call records ``meta_info[name] = {"summed_logprobs": [...], "normalized_prompt_logprobs":
        [...]}``, one score per choice in both lists whichever method chose."""
        # TODO(lab04 task 5): append the choice the model finds most likely after the text, by the call's scoring method, and record both scores of every choice (README task 5; the docstring).
        raise NotImplementedError("lab04 task 5: run_select is not written yet (see lab04_sglang/README.md, task 5)")

    def fork(self, size: int = 1) -> ForkedStates:
        """``size`` copies of this state that continue independently from the same text.

        Their requests share this state's prefix through the radix cache."""
        # TODO(lab04 task 5): size independent copies of this state that continue from the same text (README task 5; SGLang's fork).
        raise NotImplementedError("lab04 task 5: fork is not written yet (see lab04_sglang/README.md, task 5)")


class ForkedStates(list):
    """The states ``fork`` returns: index them, or ``forks += expr`` to run ``expr`` in each."""

    def __iadd__(self, expr: Any) -> ForkedStates:  # type: ignore[override]
        for state in self:
            state += expr
        return self


# --------------------------------------------------------------------------------------------
# @function


class SglFunction:
    """A program: call ``.run(**arguments)`` to get its final state (SGLang's ``SglFunction``)."""

    def __init__(self, func: Callable[..., None]) -> None:
        self.func = func

    def run(self, *args: Any, max_new_tokens: int = 128, temperature: float = 1.0, seed: int | None = None,
            backend: LocalBackend | None = None, **kwargs: Any) -> ProgramState:
        backend = backend or _default_backend
        if backend is None:
            raise ValueError("backend is not set: pass backend= or call set_default_backend first")
        check_at_least("max_new_tokens", max_new_tokens, 1)
        check_at_least("temperature", temperature, 0.0)
        state = ProgramState(backend, {"max_new_tokens": max_new_tokens, "temperature": temperature,
                                       "seed": seed})
        self.func(state, *args, **kwargs)
        return state

    def run_batch(self, batch_kwargs: list[dict[str, Any]], **run_kwargs: Any) -> list[ProgramState]:
        check_not_empty("batch_kwargs", batch_kwargs)
        return [self.run(**kwargs, **run_kwargs) for kwargs in batch_kwargs]

    def __call__(self, *args: Any, **kwargs: Any) -> ProgramState:
        return self.run(*args, **kwargs)


def function(func: Callable[..., None]) -> SglFunction:
    """Decorate ``def program(s, ...)`` to make it runnable (SGLang's ``@function``)."""
    return SglFunction(func)


def parse_json(text: str) -> Any:
    """``json.loads``, named here so a program reads like SGLang's examples."""
    return json.loads(text)
