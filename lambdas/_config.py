"""Environment variables the RAG functions read, checked once at cold start with a clear error."""

from __future__ import annotations

import os


class ConfigurationError(RuntimeError):
    """A function deployed without a setting it needs; the construct sets them all."""


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set; deploy this function with its construct")
    return value


def int_setting(name: str, default: int) -> int:
    text = setting(name, str(default))
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(f"environment variable {name}={text!r} is not an integer") from None
