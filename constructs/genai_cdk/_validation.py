"""One shape for every prop error: moved to ``genai_contracts._validation``, the contract layer.

Re-exported so ``genai_cdk._validation`` imports keep working; new code imports ``genai_contracts._validation``.
"""

from __future__ import annotations

from genai_contracts._validation import invalid, require_choice, require_int, require_number

__all__ = [
    "invalid",
    "require_choice",
    "require_int",
    "require_number",
]
