# Student skeleton for lab03_llama_cpp: fill in each TODO, then run `course test lab03_llama_cpp`.
# (Generated from the reference solution by `course stubs`.)
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
    # TODO(lab03 task 6): the argv that starts llama-cpp-python's OpenAI server on loopback with these settings, which the server's own parser reads back (README task 6; llama-cpp-python's server docs).
    raise NotImplementedError("lab03 task 6: server_command is not written yet (see lab03_llama_cpp/README.md, task 6)")


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
    # TODO(lab03 task 6): how many whole transformer blocks, weights plus their f16 KV cache, fit in free_bytes: the -ngl to pass (README task 6; the docstring).
    raise NotImplementedError("lab03 task 6: layers_that_fit is not written yet (see lab03_llama_cpp/README.md, task 6)")


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
    # TODO(lab03 task 6): an Ollama TEMPLATE that renders every conversation exactly as the Jinja chat template does, or a ValueError for a template that formats roles differently (README task 6; the docstring).
    raise NotImplementedError("lab03 task 6: go_template is not written yet (see lab03_llama_cpp/README.md, task 6)")


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
    # TODO(lab03 task 6): an Ollama Modelfile for the GGUF, from its own metadata, with the lines the docstring lists (README task 6; Ollama's docs/modelfile.md).
    raise NotImplementedError("lab03 task 6: modelfile is not written yet (see lab03_llama_cpp/README.md, task 6)")
