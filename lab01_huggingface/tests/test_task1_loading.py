"""Task 1: load a model and tokenizer; count parameters and weight bytes."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, T5Config

from shared.hardware import resolve_device

from .helpers import loading

pytestmark = pytest.mark.task(1)


@pytest.fixture(scope="module")
def tied_model() -> LlamaForCausalLM:
    """A tiny Llama whose input and output embeddings share one tensor."""
    config = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=1, num_key_value_heads=1, head_dim=64, tie_word_embeddings=True)
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


@pytest.mark.points(2)
def test_count_parameters_matches_transformers(model, tied_model):
    """count_parameters equals transformers' num_parameters(), a tied embedding counted once."""
    assert loading.count_parameters(model) == model.num_parameters()
    assert loading.count_parameters(tied_model) == tied_model.num_parameters()


@pytest.mark.points(1)
def test_weight_bytes_matches_memory_footprint(model, tied_model):
    """weight_bytes equals transformers' get_memory_footprint() in fp32, and halves in fp16."""
    assert loading.weight_bytes(model) == model.get_memory_footprint()
    half = AutoModelForCausalLM.from_config(tied_model.config, dtype=torch.float16)
    assert loading.weight_bytes(half) == half.get_memory_footprint()
    assert loading.weight_bytes(half) < 0.6 * loading.weight_bytes(tied_model)  # buffers stay fp32


@pytest.mark.points(2)
def test_load_model_gives_the_same_logits(model_dir, model, tokenizer):
    """load_model on the CPU gives an eval-mode fp32 model whose logits equal a plain from_pretrained."""
    loaded = loading.load_model(model_dir, device="cpu", dtype="auto")
    assert loaded.device == "cpu" and loaded.dtype == torch.float32
    assert not loaded.model.training, "the model must be in eval mode (model.eval()) for inference"
    ids = torch.tensor([tokenizer("The cat sat on the mat").input_ids])
    with torch.no_grad():
        expected = model(ids.to(model.device)).logits.cpu()  # the session model stays where it is
        torch.testing.assert_close(loaded.model(ids).logits, expected)
    assert loaded.tokenizer("hello").input_ids == tokenizer("hello").input_ids
    assert loaded.num_parameters == model.num_parameters()
    assert loaded.weight_bytes == model.get_memory_footprint()


@pytest.mark.points(1)
def test_load_model_auto_device_and_named_dtype(model_dir):
    """device='auto' picks what shared.hardware picks; a dtype name such as 'float16' is honoured."""
    loaded = loading.load_model(model_dir, device="auto", dtype="float16")
    assert loaded.device == resolve_device("auto")
    assert loaded.dtype == torch.float16
    assert next(loaded.model.parameters()).dtype == torch.float16


@pytest.mark.points(1)
def test_load_model_errors_name_the_folder(tmp_path):
    """A missing folder, a folder without config.json, and a model that is not a causal LM
    each raise ModelLoadError (a ValueError) naming the folder."""
    assert issubclass(loading.ModelLoadError, ValueError)
    missing = tmp_path / "nope"
    with pytest.raises(loading.ModelLoadError, match="nope"):
        loading.load_model(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(loading.ModelLoadError, match=r"config\.json") as error:
        loading.load_model(empty)
    assert "empty" in str(error.value)
    encoder = tmp_path / "t5"
    T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8, vocab_size=64).save_pretrained(encoder)
    with pytest.raises(loading.ModelLoadError, match="causal") as error:
        loading.load_model(encoder)
    assert "t5" in str(error.value)
    assert json.loads((encoder / "config.json").read_text())["model_type"] == "t5"


@pytest.mark.points(1)
@pytest.mark.gpu
def test_load_model_on_a_gpu(model_dir):
    """On a CUDA GPU, 'auto' gives a half-precision model on the GPU."""
    loaded = loading.load_model(model_dir, device="cuda", dtype="auto")
    assert next(loaded.model.parameters()).is_cuda
    assert loaded.dtype in (torch.bfloat16, torch.float16)
    assert loaded.weight_bytes == loaded.model.get_memory_footprint()
    assert loaded.weight_bytes < 3 * loaded.num_parameters  # about 2 bytes each, not 4
