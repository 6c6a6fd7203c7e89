"""Task 6: serve a GGUF with llama.cpp's OpenAI-compatible server, offload layers to a GPU, and
hand the model over to Ollama.

The chapter's ``llama-server -m model.gguf --port 8080 -ngl 99`` has a Python twin in
llama-cpp-python: ``python -m llama_cpp.server --model model.gguf --port 8080 --n_gpu_layers 99``.
Both speak the OpenAI API (``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``), so the
``openai`` client talks to either.

``-ngl N`` (``n_gpu_layers``) puts the last N transformer blocks' weights (and their KV cache) in
GPU memory and runs them there; the rest stay on the CPU. A model that does not fit in VRAM still
gains from offloading as many blocks as fit, because each offloaded block is read from fast GPU
memory instead of system RAM on every token.

Ollama packages a GGUF with a ``Modelfile``: ``FROM`` the file, a ``TEMPLATE`` in Go's template
language that renders ``.Messages`` the way the model was trained, and ``PARAMETER stop`` lines
so generation stops at the end-of-turn token.

Readings: llama-cpp-python's "OpenAI Compatible Web Server" page; llama.cpp's
``tools/server/README.md``; Ollama's ``docs/modelfile.md`` (TEMPLATE variables, PARAMETER).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Placeholders rendered through the chat template to find where role and content go.
ROLE, CONTENT = "\x00ROLE\x00", "\x00CONTENT\x00"


def free_port() -> int:
    """A free TCP port on the loopback interface (given)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(gguf_path: str | Path, port: int, n_ctx: int = 512, n_threads: int = 2,
                   n_gpu_layers: int = 0) -> list[str]:
    """The command line that starts llama-cpp-python's OpenAI-compatible server on loopback.

    Like ``llama-server -m FILE --host 127.0.0.1 --port PORT -c N_CTX -t THREADS -ngl N``:
    ``python -m llama_cpp.server --model FILE --host 127.0.0.1 --port PORT --n_ctx N_CTX
    --n_threads THREADS --n_gpu_layers N`` (with this Python, ``sys.executable``).

    Raises:
        FileNotFoundError: ``gguf_path`` does not exist.
        ValueError: ``port`` outside 1..65535 or ``n_ctx`` < 1, naming the argument.
    """
    # BEGIN SOLUTION task 6: the argv that starts llama-cpp-python's OpenAI server on loopback with these settings, which the server's own parser reads back (README task 6; llama-cpp-python's server docs).
    # HINT task 6 level 1: task 6 hands a model over: a server command, how many layers fit a GPU, and an Ollama
    #   Modelfile whose template renders exactly as the GGUF's Jinja template. Reading: README task 6,
    #   llama-cpp-python's 'OpenAI Compatible Web Server', llama.cpp's tools/server/README.md and Ollama's
    #   docs/modelfile.md.
    # HINT task 6 level 2: this Python (sys.executable) runs the module, so the server uses the
    #   same environment. The model path is best made absolute: the server may start in another directory. Every
    #   value is a string in argv. Check the file and the numbers first, naming the argument.
    path = Path(gguf_path)
    if not path.is_file():
        raise FileNotFoundError(f"gguf_path={str(gguf_path)!r}: no such file")
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in [1, 65535], got {port}")
    if n_ctx < 1:
        raise ValueError(f"n_ctx must be at least 1, got {n_ctx}")
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(path.resolve()), "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
            "--n_gpu_layers", str(n_gpu_layers)]
    # END SOLUTION


@dataclass
class Server:
    """A running server process (given): ``url`` is its OpenAI base URL (``.../v1``)."""

    process: subprocess.Popen
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(gguf_path: str | Path, timeout: float = 120.0, **options: Any) -> Server:
    """Start the server from :func:`server_command` and wait until ``/v1/models`` answers (given)."""
    import httpx

    port = free_port()
    command = server_command(gguf_path, port, **options)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return Server(process, url)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    Server(process, url).stop()
    raise TimeoutError(f"the server did not answer within {timeout} s")


def layers_that_fit(gguf_path: str | Path, free_bytes: int, n_ctx: int) -> int:
    """How many transformer blocks fit in ``free_bytes`` of GPU memory: the ``-ngl`` to pass.

    A block costs its tensors' bytes (every ``blk.N.*`` tensor) plus its KV cache for ``n_ctx``
    tokens: n_ctx x head_count_kv (head_count where the file has none) x (key_length +
    value_length) values, float16. The head
    dimensions are ``{arch}.attention.key_length`` and ``value_length`` where the file has them
    (a model's head_dim need not be embedding_length / head_count), else embedding_length /
    head_count. Blocks are equal in a Llama, so this is ``free_bytes // bytes_per_block``, at most
    ``block_count``.

    Raises:
        ValueError: ``free_bytes`` < 0 or ``n_ctx`` < 1, naming the argument.
    """
    # BEGIN SOLUTION task 6: how many whole transformer blocks, weights plus their f16 KV cache, fit in free_bytes: the -ngl to pass (README task 6; the docstring).
    # HINT task 6 level 2: a block's tensors are named blk.<N>.*; sum their stored bytes per
    #   block. Its KV cache follows the docstring's formula (float16, 2 bytes a value). Blocks of a Llama are
    #   equal, but taking the largest is safe. Never more than block_count; 0 bytes fit 0 blocks.
    if free_bytes < 0:
        raise ValueError(f"free_bytes must be at least 0, got {free_bytes}")
    if n_ctx < 1:
        raise ValueError(f"n_ctx must be at least 1, got {n_ctx}")
    reader = gguf.GGUFReader(gguf_path)
    arch = reader.fields["general.architecture"].contents()
    n_layer = reader.fields[f"{arch}.block_count"].contents()
    n_head = reader.fields[f"{arch}.attention.head_count"].contents()
    kv_key = f"{arch}.attention.head_count_kv"
    n_kv = reader.fields[kv_key].contents() if kv_key in reader.fields else n_head  # llama.cpp's default
    default_head_dim = reader.fields[f"{arch}.embedding_length"].contents() // n_head
    key_length, value_length = (reader.fields[f"{arch}.attention.{name}"].contents()
                                if f"{arch}.attention.{name}" in reader.fields else default_head_dim
                                for name in ("key_length", "value_length"))
    block_bytes = [0] * n_layer
    for tensor in reader.tensors:
        if tensor.name.startswith("blk."):
            block_bytes[int(tensor.name.split(".")[1])] += int(tensor.n_bytes)
    per_block = max(block_bytes) + n_ctx * n_kv * (key_length + value_length) * 2
    return min(n_layer, free_bytes // per_block)
    # END SOLUTION


def _render(template: str, messages: list[dict[str, str]], add_generation_prompt: bool, bos: str, eos: str) -> str:
    """Render a chat template as transformers does (given)."""
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                    bos_token=bos, eos_token=eos)


def go_template(chat_template: str, bos: str, eos: str) -> str:
    """An Ollama (Go) TEMPLATE equivalent to ``chat_template`` for templates that format every
    message the same way whatever its role and its position (Zephyr, ChatML, the fixture's).

    Render the Jinja template with one placeholder message (role ``ROLE``, content ``CONTENT``):
    the text before the message is the prefix, the message itself, with ``{{ .Role }}`` and
    ``{{ .Content }}`` put in, goes inside ``{{- range .Messages }} ... {{ end }}``, and what
    ``add_generation_prompt=True`` adds comes last.

    Raises:
        ValueError: the template formats roles or positions differently (two messages do not
            render as two copies of one, as with a ``loop.first`` branch), naming ``chat_template``.
    """
    # BEGIN SOLUTION task 6: an Ollama TEMPLATE that renders every conversation exactly as the Jinja chat template does, or a ValueError for a template that formats roles differently (README task 6; the docstring).
    # HINT task 6 level 2: the given _render renders as transformers does; ROLE and CONTENT are
    #   placeholders you can find and replace in the rendered text. A template is convertible only when one
    #   message's text is the same whatever its position (two messages render as two copies); Llama 2's is not
    #   (a question the README leaves to you). The generation prompt is what add_generation_prompt adds after the
    #   last message.
    empty = _render(chat_template, [], False, bos, eos)
    one = _render(chat_template, [{"role": ROLE, "content": CONTENT}], False, bos, eos)
    two = _render(chat_template, [{"role": ROLE, "content": CONTENT}] * 2, False, bos, eos)
    prompt = _render(chat_template, [{"role": ROLE, "content": CONTENT}], True, bos, eos)
    if not one.startswith(empty) or not prompt.startswith(one):
        raise ValueError("chat_template: cannot split it into a prefix, messages and a generation prompt")
    message = one[len(empty):]
    if two != empty + message * 2 or ROLE not in message or CONTENT not in message:
        raise ValueError("chat_template formats roles or positions differently; write its TEMPLATE by hand")
    body = message.replace(ROLE, "{{ .Role }}").replace(CONTENT, "{{ .Content }}")
    return f"{empty}{{{{- range .Messages }}}}{body}{{{{ end }}}}{prompt[len(one):]}"
    # END SOLUTION


def modelfile(gguf_path: str | Path, temperature: float = 0.7) -> str:
    """An Ollama ``Modelfile`` for ``gguf_path``, from the GGUF's own metadata.

    Lines: ``FROM <absolute path>``; ``TEMPLATE \"\"\"...\"\"\"`` from :func:`go_template` on
    ``tokenizer.chat_template`` (eos from ``tokenizer.ggml.eos_token_id`` and
    ``tokenizer.ggml.tokens``; bos likewise, but rendered as "" when
    ``tokenizer.ggml.add_bos_token`` is true, because the runtime then adds it while tokenizing);
    ``PARAMETER stop "<eos text>"``; ``PARAMETER temperature <t>``;
    ``PARAMETER num_ctx <llama.context_length>``.

    Raises:
        FileNotFoundError: no such file. ValueError: the GGUF has no chat template (naming the key).
    """
    # BEGIN SOLUTION task 6: an Ollama Modelfile for the GGUF, from its own metadata, with the lines the docstring lists (README task 6; Ollama's docs/modelfile.md).
    # HINT task 6 level 2: bos and eos are ids in the metadata; their text is tokenizer.ggml.tokens
    #   at those ids. When the GGUF says add_bos_token, the runtime adds bos while tokenizing, so the template
    #   must not write it (render bos as ''). The context length key is prefixed by the architecture.
    path = Path(gguf_path)
    if not path.is_file():
        raise FileNotFoundError(f"gguf_path={str(gguf_path)!r}: no such file")
    fields = gguf.GGUFReader(path).fields
    if "tokenizer.chat_template" not in fields:
        raise ValueError(f"{path.name} has no tokenizer.chat_template: write the TEMPLATE by hand")
    tokens = fields["tokenizer.ggml.tokens"].contents()
    adds_bos = "tokenizer.ggml.add_bos_token" in fields and fields["tokenizer.ggml.add_bos_token"].contents()
    bos = "" if adds_bos else tokens[fields["tokenizer.ggml.bos_token_id"].contents()]
    eos = tokens[fields["tokenizer.ggml.eos_token_id"].contents()]
    arch = fields["general.architecture"].contents()
    template = go_template(fields["tokenizer.chat_template"].contents(), bos, eos)
    return "\n".join([
        f"FROM {path.resolve()}",
        f'TEMPLATE """{template}"""',
        f'PARAMETER stop "{eos}"',
        f"PARAMETER temperature {temperature}",
        f"PARAMETER num_ctx {fields[f'{arch}.context_length'].contents()}",
    ]) + "\n"
    # END SOLUTION
