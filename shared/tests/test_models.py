"""Fixture models: choosing a model folder, loading the fixtures, concurrent builds, the tokenizer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared import models
from shared.models import DRAFT, FIXTURE, ModelRecipe, recipe_hash, resolve_model

from .helpers import MAIN, child_env


@pytest.fixture
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in models.MODEL_ENV.values():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"model folder not found \(argument model=.*\): .*nowhere"):
        resolve_model(tmp_path / "nowhere")


def test_a_folder_without_config_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"is not a Hugging Face model folder: it has no config\.json"):
        resolve_model(tmp_path)
    with pytest.raises(ValueError, match="model folder not found"):
        resolve_model("TinyLlama/TinyLlama-1.1B-Chat-v1.0")  # a hub name is not a folder here


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        resolve_model(None, "huge")


def test_the_environment_names_the_model(no_model_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    main, draft = tmp_path / "main", tmp_path / "draft"
    for folder in (main, draft):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    no_model_env.setenv("COURSE_MODEL", str(main))
    no_model_env.setenv("COURSE_DRAFT_MODEL", str(draft))
    assert resolve_model() == main
    assert resolve_model("fixture") == main
    assert resolve_model(None, "draft") == draft
    assert resolve_model(draft) == draft  # an argument wins over the environment
    no_model_env.setenv("COURSE_MODEL", str(tmp_path / "gone"))
    with pytest.raises(ValueError, match=r"\$COURSE_MODEL="):
        resolve_model()


@pytest.mark.parametrize("kind", ["main", "draft"])
def test_the_fixture_folders_load_with_transformers(no_model_env: pytest.MonkeyPatch, kind: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = FIXTURE if kind == "main" else DRAFT
    path = resolve_model(None, kind)  # built on first use, then cached
    assert path == models.cache_dir() / f"{recipe.name}-{recipe_hash(recipe)}"
    assert models.is_built(recipe)
    info = models.fixture_info(path)
    assert info["hash"] == recipe_hash(recipe) and info["final_loss"] < info["first_loss"]

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    assert model.config.model_type == "llama"
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_key_value_heads) == (
        recipe.hidden_size, recipe.num_hidden_layers, recipe.num_key_value_heads)
    assert sum(p.numel() for p in model.parameters()) == info["parameters"]
    assert model.config.vocab_size == len(tokenizer)
    ids = tokenizer("The cat sat on the mat.", return_tensors="pt")["input_ids"]
    assert ids[0, 0].item() == tokenizer.bos_token_id
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 4) and torch.equal(out[:, :ids.shape[1]], ids)


def test_the_tokenizer_round_trips_any_text(no_model_env: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models.tokenizer_path())
    for text in ["Crème brûlée, naïve café, Ångström, Øresund.",
                 "東京で寿司を食べました。你好，世界！한국어도 됩니다.",
                 "Emoji: 🍣🚀👩‍👩‍👧 and flags 🇫🇷 and a zero-width joiner.",
                 '  leading spaces, tabs\tand\nnewlines, {"json": [1, 2.5, null]} ',
                 ""]:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
        assert tokenizer.unk_token_id not in ids or tokenizer.unk_token_id is None
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == "<s><|user|>\nHi</s>\n<|assistant|>\n"


BUILD = """
import json, sys
from shared.models import ModelRecipe, fixture_path
recipe = ModelRecipe(name="race-test", hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                     num_attention_heads=1, num_key_value_heads=1, head_dim=64, train_steps=3,
                     max_position_embeddings=256)
trained = []
path = fixture_path(recipe, progress=lambda stage, done, total: trained.append(done))
print(json.dumps({"path": str(path), "trained_steps": len(trained)}))
"""


def test_two_processes_building_the_same_fixture_get_one_intact_folder(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = tmp_path / "cache"
    env = child_env(MAIN)
    env["COURSE_CACHE_DIR"] = str(cache)
    builders = [subprocess.Popen([sys.executable, "-c", BUILD], cwd=MAIN, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [builder.communicate(timeout=300) for builder in builders]
    for builder, (_, stderr) in zip(builders, outputs):
        assert builder.returncode == 0, stderr
    reports = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]

    # Both got the same folder; exactly one of them trained it (the other waited on the lock).
    assert reports[0]["path"] == reports[1]["path"]
    assert sorted(r["trained_steps"] for r in reports) == [0, 3]
    recipe = ModelRecipe(name="race-test", hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=1, num_key_value_heads=1, head_dim=64, train_steps=3,
                         max_position_embeddings=256)
    folder = cache / f"race-test-{recipe_hash(recipe)}"
    assert Path(reports[0]["path"]) == folder
    folders = sorted(p.name for p in cache.iterdir() if p.is_dir())
    assert folders == sorted([folder.name, f"tokenizer-{recipe_hash(recipe.tokenizer)}"])  # no .build-* left
    assert models.fixture_info(folder)["hash"] == recipe_hash(recipe)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (64, 1)
    assert len(AutoTokenizer.from_pretrained(folder)) == model.config.vocab_size


HOLD_LOCK = """
import fcntl, sys, time
handle = open(sys.argv[1], "w")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_waiting_on_the_fixture_lock_says_so_and_stops_the_time_limit(tmp_path: Path,
                                                                       capfd: pytest.CaptureFixture[str]) -> None:
    import signal
    import time

    lock = tmp_path / ".fixture-x.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock), "1.5"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"

    def over_time(signum: int, frame: object) -> None:
        raise TimeoutError("the time limit counted the wait")

    previous = signal.signal(signal.SIGALRM, over_time)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.8)  # as pytest-timeout's signal method arms it
        started = time.monotonic()
        with models._locked(lock):
            waited = time.monotonic() - started
        left, _ = signal.setitimer(signal.ITIMER_REAL, 0)  # disarm; what was left of the limit
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        holder.wait(timeout=30)
    assert waited > 0.8  # longer than the limit, which did not fire
    assert 0.5 < left <= 0.8  # re-armed with what was left before the wait
    assert f"{models.LOCK_WAIT_MESSAGE} (fixture-x, lock {lock})" in capfd.readouterr().err
