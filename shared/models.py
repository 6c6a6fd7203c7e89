"""Fixture models: a tiny Llama and its draft, built on this machine with no network.

Every lab needs a causal LM to run, and a course that must work offline on a laptop cannot
download one. So ``shared`` trains its own, in well under a minute on two CPU cores:

1. a byte-level BPE tokenizer, trained with ``tokenizers`` on the corpus in ``shared/corpus``.
   Its pre-tokenizer is GPT-2's byte-level regex, which llama.cpp reproduces exactly when the
   GGUF file says ``tokenizer.ggml.pre = "gpt-2"`` (lab03 checks that parity);
2. a Llama-architecture model (``FIXTURE``) trained briefly on the same corpus, so that it writes
   recognisable sentences and JSON records. Its sizes suit every later lab: hidden and FFN sizes
   are multiples of 256 (every llama.cpp quantization type applies), head dimension 64 (vLLM's
   CPU attention refuses 16) and 2048 positions;
3. a smaller draft model (``DRAFT``) from the same recipe and tokenizer, for speculative decoding.

Each is a normal Hugging Face folder (``config.json``, ``model.safetensors``, tokenizer files)
cached under :func:`shared.paths.cache_dir`, keyed by a hash of its recipe and the corpus, so a
changed recipe builds anew and an unchanged one loads from disk. Builds happen in a temporary
folder renamed into place, under a file lock, so concurrent builders never see half a model.

Any local Hugging Face model folder can be used instead: :func:`resolve_model` takes a path, or
reads ``$COURSE_MODEL`` (and ``$COURSE_DRAFT_MODEL`` for the draft).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .paths import cache_dir

CORPUS_DIR = Path(__file__).parent / "corpus"
FORMAT_VERSION = 1  # bump when the way a fixture is built changes but its recipe does not

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<s>", "</s>"

#: A Zephyr-style template: each turn ends with eos, so generation stops after one answer.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

#: Progress callback: (stage description, steps done, steps in all).
Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class TokenizerRecipe:
    vocab_size: int = 512
    min_frequency: int = 2


@dataclasses.dataclass(frozen=True)
class ModelRecipe:
    """Everything that decides a fixture model's weights. Change a field and it is rebuilt."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int = 64
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    train_steps: int = 200
    batch_size: int = 8
    seq_len: int = 128
    learning_rate: float = 3e-3
    seed: int = 0
    tokenizer: TokenizerRecipe = TokenizerRecipe()


FIXTURE = ModelRecipe(
    name="tiny-llama", hidden_size=256, intermediate_size=512, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, train_steps=300,
)
DRAFT = ModelRecipe(
    name="tiny-llama-draft", hidden_size=128, intermediate_size=256, num_hidden_layers=1,
    num_attention_heads=2, num_key_value_heads=1,
)

#: Llama-2-7B's shape, for GPU demos with random weights (never built on a CPU by default).
LLAMA2_7B_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "vocab_size": 32000,
    "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float16",
}


# --------------------------------------------------------------------------------------------
# Corpus


def corpus_documents() -> list[str]:
    """The training documents: sentences, JSON records and chats rendered with the template."""
    from jinja2 import Template

    template = Template(CHAT_TEMPLATE)
    sentences = (CORPUS_DIR / "sentences.txt").read_text(encoding="utf-8").splitlines()
    records = (CORPUS_DIR / "records.jsonl").read_text(encoding="utf-8").splitlines()
    chats = []
    for line in (CORPUS_DIR / "dialogues.jsonl").read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        text = template.render(messages=messages, bos_token="", eos_token=EOS_TOKEN,
                               add_generation_prompt=False)
        chats.append(text.removesuffix(EOS_TOKEN + "\n"))  # the trainer appends eos itself
    return [d for d in sentences + records + chats if d]


def _corpus_hash() -> str:
    digest = hashlib.sha256()
    for name in ("sentences.txt", "records.jsonl", "dialogues.jsonl"):
        digest.update((CORPUS_DIR / name).read_bytes())
    return digest.hexdigest()


def recipe_hash(recipe: ModelRecipe | TokenizerRecipe) -> str:
    """A short hash of a recipe, the corpus and the build format: the fixture's cache key."""
    payload = json.dumps(
        {"recipe": dataclasses.asdict(recipe), "kind": type(recipe).__name__,
         "corpus": _corpus_hash(), "format": FORMAT_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# The cache: build in a temp folder, rename into place, under a lock


LOCK_WAIT_MESSAGE = "waiting for another process building the fixtures"


@contextlib.contextmanager
def _time_limit_paused() -> Iterator[None]:
    """Stop the process's interval timer while waiting on another process, then re-arm it with
    what was left: a test's time limit (pytest-timeout's default ``signal`` method arms this
    timer) must not count another process's build. (Its ``thread`` method cannot be paused: the
    plugin builds the fixtures before the first test starts, which covers that case.)"""
    import signal
    import threading

    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return
    remaining, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if remaining > 0:
            signal.setitimer(signal.ITIMER_REAL, remaining, interval)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone still keeps the cache whole
        yield
        return
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # say why nothing happens (pytest's capture must not hide it)
            import sys

            name = path.name.removeprefix(".").removesuffix(".lock")
            print(f"{LOCK_WAIT_MESSAGE} ({name}, lock {path})", file=sys.__stderr__ or sys.stderr, flush=True)
            with _time_limit_paused():
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached_build(folder_name: str, build: Callable[[Path], None]) -> Path:
    root = cache_dir()
    final = root / folder_name
    if (final / "recipe.json").exists():
        return final
    with _locked(root / f".{folder_name}.lock"):
        if (final / "recipe.json").exists():  # another process built it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{folder_name}-", dir=root))
        try:
            build(tmp)
            if final.exists():  # a half-built folder left by a killed pre-lock build
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------------
# Tokenizer


def _train_tokenizer(recipe: TokenizerRecipe, out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    # GPT-2's byte-level regex pre-tokenizer: llama.cpp's "gpt-2" pre-tokenizer matches it exactly.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size, min_frequency=recipe.min_frequency,
        special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_documents(), trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN, additional_special_tokens=SPECIAL_TOKENS[3:],
        model_max_length=FIXTURE.max_position_embeddings, padding_side="left",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    wrapped.save_pretrained(out)
    (out / "recipe.json").write_text(json.dumps(dataclasses.asdict(recipe), indent=2))


def tokenizer_path(recipe: TokenizerRecipe = FIXTURE.tokenizer) -> Path:
    """The cached fixture tokenizer folder, trained first if needed (about a second)."""
    return _cached_build(f"tokenizer-{recipe_hash(recipe)}", lambda out: _train_tokenizer(recipe, out))


# --------------------------------------------------------------------------------------------
# Model


def llama_config(recipe: ModelRecipe, tokenizer: Any) -> Any:
    """The ``LlamaConfig`` a recipe describes, with the tokenizer's special token ids."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size, num_hidden_layers=recipe.num_hidden_layers,
        num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_key_value_heads, head_dim=recipe.head_dim,
        max_position_embeddings=recipe.max_position_embeddings, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": recipe.rope_theta},
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def _training_batches(recipe: ModelRecipe, tokenizer: Any) -> Iterator[Any]:
    """Endless batches of ``(batch_size, seq_len + 1)`` token ids from the packed, shuffled corpus."""
    import torch

    rng = random.Random(recipe.seed)
    documents = corpus_documents()
    encoded = tokenizer(documents, add_special_tokens=False)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    while True:
        order = list(range(len(encoded)))
        rng.shuffle(order)
        stream: list[int] = []
        for index in order:
            stream += [bos, *encoded[index], eos]
        width = recipe.seq_len + 1
        rows = [stream[i : i + width] for i in range(0, len(stream) - width, width)]
        rng.shuffle(rows)
        for start in range(0, len(rows) - recipe.batch_size + 1, recipe.batch_size):
            yield torch.tensor(rows[start : start + recipe.batch_size])


# leak-check: allowed, the canonical PyTorch loop (backward, step, zero_grad) that every training
# tutorial shows; lab01 task 8's points are in what this loop lacks: trainable parameters only, loss on
# the answer only, train and eval modes
def _train_model(recipe: ModelRecipe, out: Path, progress: Progress | None) -> None:
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok_dir = tokenizer_path(recipe.tokenizer)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(recipe.seed)
    model = LlamaForCausalLM(llama_config(recipe, tokenizer))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    warmup = max(1, recipe.train_steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / warmup)
        * max(0.05, 1 - step / recipe.train_steps),
    )
    batches = _training_batches(recipe, tokenizer)
    started, losses = time.perf_counter(), []
    for step in range(recipe.train_steps):
        batch = next(batches)
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if progress:
            progress(f"training {recipe.name} (loss {loss.item():.2f})", step + 1, recipe.train_steps)
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=64,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {
        "recipe": dataclasses.asdict(recipe), "hash": recipe_hash(recipe),
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "build_seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
    }
    (out / "recipe.json").write_text(json.dumps(info, indent=2))


def fixture_path(recipe: ModelRecipe = FIXTURE, progress: Progress | None = None) -> Path:
    """The cached folder of a fixture model, built first if it is not there yet."""
    return _cached_build(f"{recipe.name}-{recipe_hash(recipe)}",
                         lambda out: _train_model(recipe, out, progress))


def fixture_info(path: Path) -> dict[str, Any]:
    """What ``recipe.json`` in a built fixture folder records (parameters, losses, build time)."""
    return json.loads((Path(path) / "recipe.json").read_text())


def is_built(recipe: ModelRecipe = FIXTURE) -> bool:
    return (cache_dir() / f"{recipe.name}-{recipe_hash(recipe)}" / "recipe.json").exists()


# --------------------------------------------------------------------------------------------
# Choosing a model: the fixture, or any local Hugging Face folder


MODEL_ENV = {"main": "COURSE_MODEL", "draft": "COURSE_DRAFT_MODEL"}


def resolve_model(model: str | os.PathLike[str] | None = None, kind: str = "main",
                  progress: Progress | None = None) -> Path:
    """The model folder to use.

    Args:
        model: a local Hugging Face model folder; ``None`` (or ``"fixture"``) means the one named
            by ``$COURSE_MODEL`` (``$COURSE_DRAFT_MODEL`` for ``kind="draft"``), else the fixture.
        kind: ``"main"`` or ``"draft"``.
        progress: called while a fixture builds.

    Raises:
        ValueError: for an unknown kind, or a folder that is missing or holds no ``config.json``.
    """
    if kind not in MODEL_ENV:
        raise ValueError(f"kind must be one of {sorted(MODEL_ENV)}, got {kind!r}")
    source = f"argument model={model!s}"
    if model is None or str(model) == "fixture":
        env_value = os.environ.get(MODEL_ENV[kind])
        if not env_value or env_value == "fixture":
            return fixture_path(FIXTURE if kind == "main" else DRAFT, progress)
        model, source = env_value, f"${MODEL_ENV[kind]}={env_value}"
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ValueError(f"model folder not found ({source}): {path}")
    if not (path / "config.json").exists():
        raise ValueError(
            f"{path} ({source}) is not a Hugging Face model folder: it has no config.json "
            "(a model hub name cannot be used here: the course runs offline)"
        )
    return path


def write_7b_config(out: str | os.PathLike[str]) -> Path:
    """Write a Llama-2-7B-shaped model folder with *no weights*: ``config.json`` plus the fixture
    tokenizer (vocab padded by the config). Load it with random weights on a GPU
    (``AutoModelForCausalLM.from_config``) or in vLLM with ``load_format="dummy"``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(LLAMA2_7B_CONFIG, indent=2))
    for item in tokenizer_path().iterdir():
        if item.name != "recipe.json":
            shutil.copy2(item, out / item.name)
    return out


# --------------------------------------------------------------------------------------------
# Other architectures, random weights: for tests that must hold for any causal LM folder

#: Small configs of other architectures, each with a convention the fixture (a Llama) lacks.
#: Sizes are tiny (hidden 64, 2 layers) so a folder builds in about a second; vocab and special
#: ids come from the fixture tokenizer (pad 0, bos 1, eos 2) unless the entry says otherwise.
#: Weights are drawn 10 times wider than transformers' default (initializer_range 0.2): at the
#: default a random model with tied embeddings just repeats its last token, whatever the positions.
RANDOM_ARCHITECTURES: dict[str, dict[str, Any]] = {
    # Absolute learned positions (no rotary), tied embeddings, no GQA, Conv1D layers named
    # c_attn / c_proj / c_fc; eos id 0, which is also the pad id (GPT-2 users pad with eos).
    "gpt2": {"model_type": "gpt2", "initializer_range": 0.2, "n_embd": 64, "n_layer": 2, "n_head": 4,
             "n_positions": 256,
             "tie_word_embeddings": True, "eos_token_id": 0, "_eos_token": PAD_TOKEN},
    # Rotary positions, GQA (4 query heads, 2 KV heads), q/k/v biases, tied embeddings, and a
    # *list* of eos ids (Qwen and Llama 3 stop at end-of-text and end-of-turn alike).
    "qwen2": {"model_type": "qwen2", "initializer_range": 0.2, "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
              "tie_word_embeddings": True, "eos_token_id": [2, 5]},
    # Rotary on a quarter of each head, one fused query_key_value layer, parallel residual,
    # untied embeddings; layers named query_key_value / dense / dense_h_to_4h / dense_4h_to_h.
    "gpt_neox": {"model_type": "gpt_neox", "initializer_range": 0.2, "hidden_size": 64, "intermediate_size": 128,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "rotary_pct": 0.25,
                 "max_position_embeddings": 256, "use_parallel_residual": True,
                 "tie_word_embeddings": False, "eos_token_id": 2},
    # Learned positions with OPT's offset of 2, tied embeddings, layers named out_proj / fc1 / fc2.
    "opt": {"model_type": "opt", "initializer_range": 0.2, "hidden_size": 64, "ffn_dim": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 256, "word_embed_proj_dim": 64,
            "tie_word_embeddings": True, "eos_token_id": 2},
}


def _build_random_model(architecture: str, out: Path, seed: int) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    spec = dict(RANDOM_ARCHITECTURES[architecture])
    eos_token = spec.pop("_eos_token", None)
    model_type = spec.pop("model_type")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    if eos_token is not None:
        tokenizer.eos_token = eos_token
    eos = spec.pop("eos_token_id")
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, **spec)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "recipe.json").write_text(json.dumps({"architecture": architecture, "seed": seed,
                                                 "config": RANDOM_ARCHITECTURES[architecture]}, indent=2))


def build_random_model(architecture: str, out: str | os.PathLike[str] | None = None, *, seed: int = 0) -> Path:
    """A small model folder of another architecture with random weights and the fixture tokenizer.

    Tests that must hold for *any* causal LM (``--model PATH``) use these: the architectures in
    :data:`RANDOM_ARCHITECTURES` differ from the fixture in positions (absolute, partial rotary),
    embedding tying, layer names and eos conventions (id 0, a list of ids). The weights are random,
    so the model never learned to stop or to write sense: only properties that hold for any
    weights can be checked on it.

    Args:
        architecture: a key of :data:`RANDOM_ARCHITECTURES` (``gpt2``, ``qwen2``, ``gpt_neox``, ``opt``).
        out: where to write the folder; ``None`` builds it once in the course cache and reuses it.
        seed: the seed of the random weights.

    Raises:
        ValueError: an unknown architecture, naming the known ones.
    """
    if architecture not in RANDOM_ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(RANDOM_ARCHITECTURES)}, got {architecture!r}")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _build_random_model(architecture, out, seed)
        return out
    key = hashlib.sha256(json.dumps({"spec": RANDOM_ARCHITECTURES[architecture], "seed": seed,
                                     "tokenizer": recipe_hash(FIXTURE.tokenizer), "format": FORMAT_VERSION},
                                    sort_keys=True).encode()).hexdigest()[:12]
    return _cached_build(f"random-{architecture}-{key}", lambda folder: _build_random_model(architecture, folder, seed))
