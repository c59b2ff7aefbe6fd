"""One shape for every prop error: which prop, which value, how to fix it."""

from __future__ import annotations

from typing import Any


def invalid(prop: str, value: Any, fix: str) -> ValueError:
    """Build the ValueError raised at synth time for a bad construct prop."""
    return ValueError(f"{prop}={value!r} is invalid: {fix}")


def require_int(prop: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(prop, value, "expected an integer.")
    if minimum is not None and value < minimum:
        raise invalid(prop, value, f"must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise invalid(prop, value, f"must be at most {maximum}.")
    return value


def require_number(prop: str, value: Any, *, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(prop, value, "expected a number.")
    if minimum is not None and value < minimum:
        raise invalid(prop, value, f"must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise invalid(prop, value, f"must be at most {maximum}.")
    return float(value)


def require_choice(prop: str, value: Any, choices: tuple) -> Any:
    if value not in choices:
        raise invalid(prop, value, f"choose one of {', '.join(map(str, choices))}.")
    return value
