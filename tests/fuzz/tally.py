"""How many fuzzed events each handler got, and how many escaped it as an exception (must be 0)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

EVENTS: Counter[str] = Counter()
UNHANDLED: Counter[str] = Counter()


def run(name: str, handler: Callable[..., Any], *args, designed: tuple[type[BaseException], ...] = (), **kwargs) -> Any:
    """``handler(*args)``, counted; an exception escaping it is counted and re-raised (the test fails).

    ``designed``: exceptions that are the handler's designed answer (a custom resource's FAILED response is
    an exception the Provider framework reports), counted apart and not as unhandled.
    """
    EVENTS[name] += 1
    try:
        response = handler(*args, **kwargs)
    except designed as error:
        _note(f"{name}: designed failure {type(error).__name__}")
        raise
    except BaseException as error:
        UNHANDLED[name] += 1
        _note(f"{name}: raised {type(error).__name__}")
        raise
    _note(f"{name}: {outcome(response)}")
    return response


def _note(text: str) -> None:
    from hypothesis import event
    from hypothesis.control import currently_in_test_context

    if currently_in_test_context():  # hypothesis' statistics; a plain test has none
        event(text)


def outcome(response: Any) -> str:
    """The class of a response, for hypothesis' statistics (``--hypothesis-show-statistics``)."""
    if isinstance(response, dict) and isinstance(response.get("statusCode"), int):
        return f"HTTP {response['statusCode']}"
    if isinstance(response, dict) and isinstance(response.get("response"), dict):
        return f"HTTP {response['response'].get('httpStatusCode')}"
    if isinstance(response, dict) and "PhysicalResourceId" in response:
        return "SUCCESS"
    return type(response).__name__


def summary() -> str:
    lines = [f"  {name}: {EVENTS[name]} events, {UNHANDLED[name]} unhandled" for name in sorted(EVENTS)]
    total = f"  total: {sum(EVENTS.values())} events, {sum(UNHANDLED.values())} unhandled exceptions"
    return "\n".join(["fuzzed Lambda events:", *lines, total])
