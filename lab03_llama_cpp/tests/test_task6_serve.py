"""Task 6: serve with llama.cpp's OpenAI-compatible server, offload layers, hand over to Ollama."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

from .helpers import hf_greedy_text, llama_logits, llama_text, load_llama, reference_gguf, require_llama_folder, serve

gguf = pytest.importorskip("gguf", reason="needs the gguf package: pip install -e '.[llama]'")
pytestmark = pytest.mark.task(6)


@pytest.fixture(scope="module")
def f32_file(model_dir):
    """The model in F32, written by llama.cpp's own converter (so this task does not need task 2)."""
    require_llama_folder(model_dir)
    return reference_gguf(model_dir, "f32")


@pytest.fixture(scope="module")
def server(f32_file):
    """One llama.cpp server for the module, started from your server_command, stopped at the end."""
    try:
        import llama_cpp.server.app  # noqa: F401  (the server's own dependencies)
    except ImportError as error:
        pytest.skip(f"llama.cpp's server cannot start here ({error}); to get it: "
                    "pip install 'llama-cpp-python[server]' (not gradable on this machine)")
    running = serve.start_server(f32_file, n_ctx=512, n_threads=1)
    yield running
    running.stop()


@pytest.mark.llama_cpp
@pytest.mark.points(2)
def test_server_command_parses_as_llama_cpp_server_flags(f32_file, monkeypatch):
    """llama_cpp.server's own argument parser reads your command as: this model, loopback, the port,
    the context, threads and GPU layers; bad ports and contexts are refused naming the argument."""
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

    command = serve.server_command(f32_file, 8123, n_ctx=1024, n_threads=3, n_gpu_layers=7)
    assert command[1:3] == ["-m", "llama_cpp.server"]
    parser = argparse.ArgumentParser()
    add_args_from_model(parser, Settings)
    args = parser.parse_args(command[3:])
    server_settings = parse_model_from_args(ServerSettings, args)
    model_settings = parse_model_from_args(ModelSettings, args)
    assert server_settings.host == "127.0.0.1" and server_settings.port == 8123
    assert model_settings.model == str(f32_file.resolve())
    monkeypatch.chdir(f32_file.parent)  # a relative path: the server may start in another directory
    relative = serve.server_command(f32_file.name, 8123)
    assert relative[relative.index("--model") + 1] == str(f32_file.resolve()), "--model must be an absolute path"
    assert (model_settings.n_ctx, model_settings.n_threads, model_settings.n_gpu_layers) == (1024, 3, 7)
    highest = serve.server_command(f32_file, 65535)
    assert highest[highest.index("--port") + 1] == "65535"
    for port in (0, 65536, 70000):
        with pytest.raises(ValueError, match="port"):
            serve.server_command(f32_file, port)
    with pytest.raises(ValueError, match="n_ctx"):
        serve.server_command(f32_file, 8123, n_ctx=0)
    with pytest.raises(FileNotFoundError, match="absent"):
        serve.server_command(f32_file.parent / "absent.gguf", 8123)


@pytest.mark.llama_cpp
@pytest.mark.points(4)
def test_openai_client_talks_to_the_server(server, model, tokenizer):
    """The openai client lists the model, and greedy completions and chat completions from the server
    equal transformers' greedy output for the same prompts."""
    from openai import OpenAI

    client = OpenAI(base_url=server.url, api_key="unused")
    assert len(client.models.list().data) == 1
    greedy = {"temperature": 0.0, "extra_body": {"repeat_penalty": 1.0, "top_k": 1}}
    prompt = '{"name": "'
    answer = client.completions.create(model="any", prompt=prompt, max_tokens=16, **greedy)
    assert llama_text(answer.choices[0].text) == hf_greedy_text(model, tokenizer, tokenizer(prompt).input_ids, 16)
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": "What is the capital of Japan?"}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        answer = client.chat.completions.create(model="any", messages=messages, max_tokens=20, **greedy)
        assert llama_text(answer.choices[0].message.content) == hf_greedy_text(model, tokenizer, list(ids), 20)


def block_tensor_bytes(path) -> tuple[int, int]:
    """(largest block's tensor bytes, block count), from the gguf package's reader."""
    reader = gguf.GGUFReader(path)
    per_block: dict[int, int] = {}
    # leak-check: allowed, the gguf package's reader as the oracle
    for tensor in reader.tensors:
        if match := re.match(r"blk\.(\d+)\.", tensor.name):
            per_block[int(match.group(1))] = per_block.get(int(match.group(1)), 0) + int(tensor.n_bytes)
    return max(per_block.values()), len(per_block)


#: ggml's bytes per element of the KV cache types llama.cpp logs.
KV_TYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2}


def llama_cpp_kv_bytes_per_token(path) -> int:
    """One block's KV-cache bytes per token of context, as llama.cpp itself allocates them: from its
    load log, the K and V widths per layer (``n_embd_k_gqa``, ``n_embd_v_gqa``, which llama.cpp takes
    from attention.key_length / value_length, else embedding_length / head_count) and the cache's
    element types; checked against the cache size it reports."""
    import contextlib
    import io

    log = io.StringIO()
    with contextlib.redirect_stderr(log):  # llama-cpp-python prints llama.cpp's log to sys.stderr
        llm = load_llama(path, n_ctx=512, verbose=True)
    llm.close()
    text = log.getvalue()
    widths = {name: re.search(rf"{name}\s*=\s*(\d+)\s*$", text, re.M) for name in ("n_embd_k_gqa", "n_embd_v_gqa")}
    size = re.search(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers.*K \((\w+)\).*V \((\w+)\)",
                     text)
    assert size and all(widths.values()), f"llama.cpp's load log has no KV cache report:\n{text[-3000:]}"
    k_width, v_width = (int(match.group(1)) for match in widths.values())
    cells, layers = int(size.group(2)), int(size.group(3))
    per_token = k_width * KV_TYPE_BYTES[size.group(4)] + v_width * KV_TYPE_BYTES[size.group(5)]
    assert f"{per_token * cells * layers / 2**20:.2f}" == size.group(1), (per_token, cells, layers, size.group(0))
    return per_token


@pytest.mark.llama_cpp
@pytest.mark.points(2)
@pytest.mark.parametrize("which", ["model", "head_dim 32 where hidden / heads is 16"])
def test_layers_that_fit(f32_file, llama_shape, which):
    """layers_that_fit counts whole blocks (tensors + their KV cache, as many bytes as llama.cpp
    allocates for them): 0 with no memory, k when exactly k blocks fit, k - 1 one byte short, and
    never more than the model has; on the model and on a Llama whose head_dim is not hidden / heads
    (llama.cpp's converter writes that file)."""
    path = f32_file if which == "model" else reference_gguf(llama_shape("head_dim")[0], "f32")
    block, n_layer = block_tensor_bytes(path)
    per_token = llama_cpp_kv_bytes_per_token(path)
    for n_ctx in (512, 4096):
        one = block + n_ctx * per_token
        assert serve.layers_that_fit(path, 0, n_ctx) == 0
        assert serve.layers_that_fit(path, one, n_ctx) == 1, f"n_ctx {n_ctx}: one block costs {one} bytes"
        assert serve.layers_that_fit(path, one - 1, n_ctx) == 0, f"n_ctx {n_ctx}: one block costs {one} bytes"
        assert serve.layers_that_fit(path, n_layer * one - 1, n_ctx) == n_layer - 1
        assert serve.layers_that_fit(path, n_layer * one, n_ctx) == n_layer
        assert serve.layers_that_fit(path, 10**12, n_ctx) == n_layer
    with pytest.raises(ValueError, match="free_bytes"):
        serve.layers_that_fit(path, -1, 512)
    with pytest.raises(ValueError, match="n_ctx"):
        serve.layers_that_fit(path, 10**9, 0)


@pytest.mark.gpu
@pytest.mark.llama_cpp
@pytest.mark.points(1)
def test_gpu_offload_keeps_the_logits(f32_file, tokenizer):
    """Where llama.cpp was built with CUDA, offloading every layer (-ngl 99) keeps the logits of the
    CPU run (to float tolerance)."""
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python is a CPU build; rebuild with CMAKE_ARGS='-DGGML_CUDA=on' "
                    "pip install --force-reinstall --no-cache-dir llama-cpp-python (not gradable on this machine)")
    ids = tokenizer("The cat sat on the mat").input_ids
    cpu = load_llama(f32_file, logits_all=True, n_gpu_layers=0)
    gpu = load_llama(f32_file, logits_all=True, n_gpu_layers=99)
    try:
        assert np.abs(llama_logits(cpu, ids) - llama_logits(gpu, ids)).max() < 1e-2
    finally:
        cpu.close()
        gpu.close()


def render_go_template(template: str, messages: list[dict[str, str]]) -> str:
    """Enough of Go's text/template for Ollama chat templates: ``{{- range .Messages }} ... {{ end }}``
    with ``{{ .Role }}`` and ``{{ .Content }}`` inside (``{{-`` trims the whitespace before it)."""
    match = re.fullmatch(r"(?s)(.*?)\{\{-? ?range \.Messages ?\}\}(.*?)\{\{ ?end ?\}\}(.*)", template)
    assert match, f"no '{{{{- range .Messages }}}} ... {{{{ end }}}}' loop in {template!r}"
    before, body, after = match.groups()
    if "{{- range" in template:
        before = before.rstrip()
    rendered = "".join(body.replace("{{ .Role }}", m["role"]).replace("{{ .Content }}", m["content"])
                       for m in messages)
    return before + rendered + after


@pytest.mark.points(1.5)
def test_modelfile_matches_the_gguf(f32_file, tokenizer, monkeypatch, tmp_path):
    """The Modelfile says FROM the absolute path (also when given a relative one), stops at the GGUF's
    eos text, takes num_ctx from its metadata, and its TEMPLATE renders conversations exactly as the
    GGUF's chat template does (the runtime adds bos itself when tokenizer.ggml.add_bos_token says so;
    in a copy of the metadata where it is False, the TEMPLATE must write bos itself)."""
    if not tokenizer.chat_template:
        pytest.skip("the model has no chat template")
    text = serve.modelfile(f32_file)
    fields = gguf.GGUFReader(f32_file).fields
    # leak-check: allowed, the gguf package's reader as the oracle
    tokens = fields["tokenizer.ggml.tokens"].contents()
    eos = tokens[fields["tokenizer.ggml.eos_token_id"].contents()]
    bos = tokens[fields["tokenizer.ggml.bos_token_id"].contents()]
    assert text.splitlines()[0] == f"FROM {f32_file.resolve()}"
    monkeypatch.chdir(f32_file.parent)  # a relative path: Ollama resolves it against the Modelfile's folder
    assert serve.modelfile(f32_file.name).splitlines()[0] == f"FROM {f32_file.resolve()}"
    assert f'PARAMETER stop "{eos}"' in text.splitlines()
    assert f"PARAMETER num_ctx {fields['llama.context_length'].contents()}" in text.splitlines()
    template = re.search(r'(?s)TEMPLATE """(.*?)"""', text)
    assert template, "no TEMPLATE \"\"\"...\"\"\" block"
    added_bos = bos if fields["tokenizer.ggml.add_bos_token"].contents() else ""
    conversations = [
        [{"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a city."},
         {"role": "assistant", "content": "Lima."}, {"role": "user", "content": "Another?"}],
    ]
    for messages in conversations:
        expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert added_bos + render_go_template(template.group(1), messages) == expected
    no_bos = tmp_path / "no_bos.gguf"  # the same metadata (no tensors) with add_bos_token False
    writer = gguf.GGUFWriter(no_bos, arch=fields["general.architecture"].contents())
    for name, field in fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value_type = gguf.GGUFValueType(field.types[0])
        sub_type = gguf.GGUFValueType(field.types[-1]) if value_type == gguf.GGUFValueType.ARRAY else None
        value = False if name == "tokenizer.ggml.add_bos_token" else field.contents()
        writer.add_key_value(name, value, value_type, sub_type=sub_type)
    # leak-check: allowed, gguf.GGUFWriter's own protocol, used to write the test's metadata copy
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    template = re.search(r'(?s)TEMPLATE """(.*?)"""', serve.modelfile(no_bos))
    for messages in conversations:
        expected = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert render_go_template(template.group(1), messages) == expected, "add_bos_token False: bos left out"


@pytest.mark.points(0.5)
def test_go_template_refuses_or_renders_as_jinja():
    """A chat template that formats the first message unlike the others (``loop.first``) cannot be one
    ``range`` body: go_template either refuses it (a ValueError) or its TEMPLATE renders conversations
    exactly as jinja2 renders the chat template."""
    import jinja2

    chat_template = ("{% for m in messages %}{% if loop.first %}[FIRST]{% endif %}{{ m.role }}: {{ m.content }}\n"
                     "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Bye"}]
    expected = jinja2.Environment().from_string(chat_template).render(messages=messages, add_generation_prompt=True)
    try:
        template = serve.go_template(chat_template, "<s>", "</s>")
    except ValueError:
        return
    assert render_go_template(template, messages) == expected
