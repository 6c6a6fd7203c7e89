"""Where things are: the course root, its labs, and the user cache folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

#: The course repository root (the folder holding ``pyproject.toml`` and the labs).
ROOT = Path(__file__).resolve().parent.parent

LAB_DIR_PATTERN = re.compile(r"^lab(\d\d)_[a-z0-9_]+$")


def lab_dirs(root: Path = ROOT) -> list[Path]:
    """Every ``labNN_*`` folder under ``root``, in lab order."""
    return sorted(p for p in root.iterdir() if p.is_dir() and LAB_DIR_PATTERN.match(p.name))


def lab_number(lab_dir: Path | str) -> int:
    """``lab03_llama_cpp`` -> 3."""
    match = LAB_DIR_PATTERN.match(Path(lab_dir).name)
    if not match:
        raise ValueError(f"{lab_dir!s} is not a lab folder (expected a name like lab01_huggingface)")
    return int(match.group(1))


def resolve_lab(name: str, root: Path = ROOT) -> Path:
    """Find a lab folder from what a person types: ``lab01``, ``1``, ``01``, ``huggingface``,
    or the full folder name. Raises ``ValueError`` listing the labs when nothing matches."""
    labs = lab_dirs(root)
    wanted = name.strip().rstrip("/").lower()
    for lab in labs:
        number = f"{lab_number(lab):02d}"
        suffix = lab.name.split("_", 1)[1]
        if wanted in {lab.name, f"lab{number}", number, number.lstrip("0"), suffix}:
            return lab
    listing = ", ".join(lab.name for lab in labs) or "(none found)"
    raise ValueError(f"no lab named {name!r}; the labs are: {listing}")


def cache_dir() -> Path:
    """The user cache folder for built fixtures: ``$COURSE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/llm-inference-course``, else ``~/.cache/llm-inference-course``."""
    if os.environ.get("COURSE_CACHE_DIR"):
        path = Path(os.environ["COURSE_CACHE_DIR"]).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = base / "llm-inference-course"
    path.mkdir(parents=True, exist_ok=True)
    return path
