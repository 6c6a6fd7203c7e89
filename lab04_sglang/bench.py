"""Lab 04 measurements: what constrained decoding costs and what the radix cache saves.

    python lab04_sglang/bench.py [--impl student|solution] [--model PATH] [--repeats 3]

Prints, from one run (ratios, so they compare across machines):
- time per token of constrained vs unconstrained greedy decoding, masks cached (tasks 1-2);
- compile time per schema: this lab's automaton + every reachable state's mask, vs xgrammar (task 3);
- prefilled tokens and wall time with and without the radix cache on a multi-turn chat workload
  and a few-shot workload (task 4), and the radix tree the chat workload leaves behind.
It runs your code (src/) by default; --impl solution runs the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

LAB = "lab04_sglang"
RECORD = {"type": "object", "required": ["name", "age"],
          "properties": {"name": {"type": "string", "maxLength": 16}, "age": {"type": "integer"},
                         "city": {"enum": ["Lima", "Seoul", "Tokyo", "Madrid"]}, "active": {"type": "boolean"}}}
RECORDS = {"type": "array", "items": RECORD, "minItems": 3, "maxItems": 3}
PERSON = {"$defs": {"Address": {"type": "object", "required": ["street", "number"],
                                "properties": {"street": {"type": "string"}, "number": {"type": "integer"}}}},
          "type": "object", "required": ["name", "score", "tags", "home"],
          "properties": {"name": {"type": "string"}, "score": {"type": "number"},
                         "tags": {"type": "array", "items": {"type": "string"}}, "home": {"$ref": "#/$defs/Address"},
                         "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
SYSTEM_PROMPT = ("You answer in one short sentence. You are a careful assistant for a travel company: you know "
                 "the capitals of the world, you write user and product records as JSON when asked, and you never "
                 "make up facts. When you do not know, you say so. Keep answers short and plain.")
QUESTIONS = ["What is the capital of Japan?", "Give me a user record as JSON.", "What is the capital of Peru?",
             "Name a city.", "What is the capital of Spain?", "Give me a product record as JSON."]
FEW_SHOT = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in [
    ("What is the capital of Japan?", "Tokyo."), ("What is the capital of Peru?", "Lima."),
    ("What is the capital of Spain?", "Madrid."), ("What is the capital of Korea?", "Seoul."),
    ("What is the capital of Kenya?", "Nairobi."), ("What is the capital of Canada?", "Ottawa."),
    ("What is the capital of Egypt?", "Cairo."), ("What is the capital of Chile?", "Santiago.")] * 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["student", "solution"], default="student")
    parser.add_argument("--model", default=None, help="a local HF model folder (default: the fixture)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the best is kept")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    os.environ["COURSE_IMPL"] = args.impl
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from shared.impl import lab_module
    from shared.models import resolve_model

    hf_logging.disable_progress_bar()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    grammar, masks = lab_module(LAB, "grammar"), lab_module(LAB, "masks")
    prefix_cache = lab_module(LAB, "prefix_cache")
    try:
        model_dir = resolve_model(args.model, "main")
    except ValueError as error:
        parser.error(str(error))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    console = Console()
    best = lambda run: min(run() for _ in range(args.repeats))  # noqa: E731

    # ---- constrained vs unconstrained, masks cached
    vocabulary = masks.Vocabulary(tokenizer, model.config.vocab_size, model.generation_config.eos_token_id)
    prompt = tokenizer("Give me three user records as JSON: ").input_ids
    masker = masks.TokenMasker(grammar.compile_json_schema(RECORDS), vocabulary)
    engine = prefix_cache.PrefixCachingGenerator(model, use_cache=False)
    constrained = engine.generate(prompt, 200, masker=masker)  # warm-up: fills the mask cache
    n_tokens = len(constrained.token_ids)

    def per_token(use_masker: bool) -> float:
        start = time.perf_counter()
        out = engine.generate(prompt, n_tokens, masker=masker if use_masker else None, eos_token_id=-1)
        return (time.perf_counter() - start) / len(out.token_ids)

    pairs = [(per_token(False), per_token(True)) for _ in range(args.repeats)]  # interleaved: same load for both
    free, bound = min(p[0] for p in pairs), min(p[1] for p in pairs)
    table = Table(title=f"Constrained decoding (greedy, {n_tokens} tokens, masks cached)")
    for column in ("decoding", "ms / token", "vs unconstrained"):
        table.add_column(column)
    table.add_row("unconstrained", f"{free * 1e3:.2f}", "1.00×")
    table.add_row("JSON schema (3 records)", f"{bound * 1e3:.2f}", f"{bound / free:.2f}×")
    console.print(table)
    console.print(f"  output: {tokenizer.decode(constrained.token_ids, skip_special_tokens=True)[:110]}…")

    # ---- compile time vs xgrammar
    table = Table(title="Compile time per grammar (ours: automaton + every reachable state's mask)")
    for column in ("grammar", "DFA states", "ours (ms)", "xgrammar (ms)"):
        table.add_column(column)
    xgr = xgrammar_compiler(tokenizer, model.config.vocab_size)
    grammars = [("record", "json", RECORD), ("3 records", "json", RECORDS), ("person ($ref)", "json", PERSON),
                ("regex \\d{3}-[a-z]+", "regex", r"\d{3}-[a-z]+")]
    for name, kind, spec in grammars:
        def ours(kind: str = kind, spec: object = spec) -> float:
            start = time.perf_counter()
            automaton = grammar.compile_json_schema(spec) if kind == "json" else grammar.compile_regex(spec)
            masks.TokenMasker(automaton, vocabulary).precompute()
            return time.perf_counter() - start

        def theirs(kind: str = kind, spec: object = spec) -> float:
            start = time.perf_counter()
            if kind == "json":
                xgr.compile_json_schema(json.dumps(spec), any_whitespace=False, separators=(", ", ": "))
            else:
                xgr.compile_regex(spec)
            return time.perf_counter() - start

        automaton = grammar.compile_json_schema(spec) if kind == "json" else grammar.compile_regex(spec)
        states = masks.TokenMasker(automaton, vocabulary).precompute()
        table.add_row(name, str(states), f"{best(ours) * 1e3:.1f}",
                      f"{best(theirs) * 1e3:.1f}" if xgr else "not installed")
    console.print(table)

    # ---- radix cache
    table = Table(title="Radix cache vs none (greedy)")
    for column in ("workload", "requests", "prefilled tokens (none → radix)", "cut", "time (none → radix)", "speed-up"):
        table.add_column(column)
    last_engine = None
    for name, run in (("multi-turn chat", multi_turn), ("few-shot", few_shot)):
        results: dict[bool, tuple[int, int, float]] = {}
        for _ in range(args.repeats):  # interleaved, so a burst of load on the machine hits both
            for use_cache in (False, True):
                engine = prefix_cache.PrefixCachingGenerator(model, use_cache=use_cache)
                start = time.perf_counter()
                requests, prefilled = run(engine, tokenizer)
                elapsed = time.perf_counter() - start
                if use_cache not in results or elapsed < results[use_cache][2]:
                    results[use_cache] = (requests, prefilled, elapsed)
                if use_cache and name == "multi-turn chat":
                    last_engine = engine
        (n, p0, t0), (_, p1, t1) = results[False], results[True]
        table.add_row(name, str(n), f"{p0} → {p1}", f"{1 - p1 / p0:.0%}", f"{t0:.2f} s → {t1:.2f} s", f"{t0 / t1:.2f}×")
    console.print(table)
    console.print("The radix tree after the multi-turn chat workload (show()):")
    console.print(last_engine.radix.show(tokenizer.decode, width=48), markup=False, highlight=False)


def xgrammar_compiler(tokenizer, vocab_size: int):
    try:
        import xgrammar
    except ImportError:
        return None
    # leak-check: allowed, xgrammar's own API, timed beside ours
    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
    return xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)


def multi_turn(engine, tokenizer) -> tuple[int, int]:
    """Three conversations of three turns; each turn sends the whole history. Returns (requests, prefilled)."""
    requests = prefilled = 0
    for conversation in range(3):
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for turn in range(3):
            messages.append({"role": "user", "content": QUESTIONS[(conversation + turn) % len(QUESTIONS)]})
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
            out = engine.generate(list(ids), 24)
            messages.append({"role": "assistant", "content": tokenizer.decode(out.token_ids, skip_special_tokens=True)})
            requests, prefilled = requests + 1, prefilled + out.prefilled_tokens
    return requests, prefilled


def few_shot(engine, tokenizer) -> tuple[int, int]:
    """One long few-shot prompt, then one question each. Returns (requests, prefilled)."""
    requests = prefilled = 0
    for city in ("Japan", "Peru", "Spain", "Korea", "Kenya", "Chile", "Egypt", "Canada"):
        ids = tokenizer(FEW_SHOT + f"Q: What is the capital of {city}?\nA:").input_ids
        out = engine.generate(ids, 6)
        requests, prefilled = requests + 1, prefilled + out.prefilled_tokens
    return requests, prefilled


if __name__ == "__main__":
    main()
