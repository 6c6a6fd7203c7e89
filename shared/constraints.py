"""The versions CI tested: ``shared/constraints-cpu.txt``, and how far this install is from them.

``bash shared/install.sh`` installs with ``pip install -c shared/constraints-cpu.txt`` on a Linux
x86-64 machine without an NVIDIA GPU (the machine CI runs on), so that a student installing next
month gets the versions the course was tested with. ``bash shared/install.sh --lock`` rewrites the
file from the environment it has just installed; commit it when CI is green. ``course check``
lists every installed package whose version differs from it.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from .paths import ROOT

CONSTRAINTS = ROOT / "shared" / "constraints-cpu.txt"
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Llama_CPP.python`` -> ``llama-cpp-python``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_constraints(path: Path = CONSTRAINTS) -> dict[str, str]:
    """{canonical name: pinned version} from a pip constraints file (comments and blanks skipped)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        found = PIN.match(line)
        if found:
            pins[canonical(found.group(1))] = found.group(2)
    return pins


def installed_versions() -> dict[str, str]:
    return {canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
            if dist.metadata["Name"]}


def version_drift(path: Path = CONSTRAINTS, installed: dict[str, str] | None = None) -> list[str]:
    """One line per pinned package installed at another version than the pin (missing ones are
    fine: an install may leave optional parts out)."""
    installed = installed_versions() if installed is None else installed
    return [f"{name} {installed[name]} (tested: {pinned})" for name, pinned in sorted(read_constraints(path).items())
            if name in installed and installed[name] != pinned]
