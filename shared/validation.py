"""Argument checks shared by every lab, so that bad input fails the same way everywhere:
a ``ValueError`` naming the argument, what was expected and what was given (vLLM's wording:
"max_tokens must be at least 1, got -5"), raised before any model is called."""

from __future__ import annotations

from collections.abc import Sized
from typing import Any


def check_at_least(name: str, value: Any, minimum: float) -> None:
    """``value`` must be a number >= ``minimum`` (and an int when ``minimum`` is an int)."""
    wants_int = isinstance(minimum, int)
    kind = (int,) if wants_int else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name} must be {'an integer' if wants_int else 'a number'}, "
                         f"got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")


def check_in_range(name: str, value: Any, low: float, high: float, *,
                   low_inclusive: bool = True, high_inclusive: bool = True) -> None:
    """``value`` must lie in the interval from ``low`` to ``high`` (brackets as given)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    above = value >= low if low_inclusive else value > low
    below = value <= high if high_inclusive else value < high
    if not (above and below):
        interval = f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def check_not_empty(name: str, value: Sized | None) -> None:
    """``value`` must be a non-empty string or sequence."""
    if value is None or len(value) == 0:
        raise ValueError(f"{name} must not be empty")
