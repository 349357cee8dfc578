"""Argument checks shared by the configs and the serving functions: each raises ValueError
with a message that says what to pass instead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recsys.errors import BadInputError


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise BadInputError(f"unknown {name} {value!r}: choose one of "
                         f"{', '.join(map(str, choices))}")


def check_range(name: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high):
        raise BadInputError(f"{name} must be between {_number(low)} and {_number(high)}, "
                         f"got {value!r}")


def check_k(k: int) -> None:
    """A list length: at least 1."""
    if int(k) < 1:
        raise BadInputError(f"k must be at least 1, got {k}")


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"
