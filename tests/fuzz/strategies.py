"""Values an event may carry: anything JSON can spell and some it cannot, and mutations of real events.

``anything`` covers text (every Unicode category, huge strings), integers of any size, floats with
infinities and NaN, booleans, None and nested lists/objects; ``mutated`` takes a real event (or body)
and drops keys, replaces values with ``anything``, adds unknown keys or swaps containers.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([2**31, 2**53, 2**63, 10**20, -(10**20)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["", " ", "\u3000", "\x00", "\ud83d", "😀", "\n", "true", "1e400", "NaN", "null", "[]", "{}"])
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
huge_text = st.integers(1, 6).flatmap(
    lambda scale: st.sampled_from(["x", "😀", "é", "\u3000", '"', "\\"]).map(lambda c: c * (10**scale // 2))
)


@st.composite
def mutated(draw, base: dict, *, keys: list[str] | None = None) -> dict:
    """``base`` with one to three mutations of its keys (or of ``keys``, which may be absent from it)."""
    value: dict[str, Any] = dict(base)
    names = list(keys or base) + ["unknownField"]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(names))
        action = draw(st.sampled_from(["drop", "replace", "replace", "huge", "wrap"]))
        if action == "drop":
            value.pop(key, None)
        elif action == "replace":
            value[key] = draw(anything)
        elif action == "huge":
            value[key] = draw(huge_text)
        else:
            value[key] = [value.get(key)] if draw(st.booleans()) else {"value": value.get(key)}
    return value


def spelt(body: Any, draw) -> str:
    """``body`` as JSON text, in one of the spellings a client may send (escaped or raw UTF-8, spaced)."""
    style = draw(st.sampled_from(["ascii", "raw", "spaced", "nan"]))
    if style == "ascii":
        return json.dumps(body)
    if style == "raw":
        return json.dumps(body, ensure_ascii=False)
    if style == "spaced":
        return json.dumps(body, indent=draw(st.integers(0, 8)))
    return json.dumps(body, allow_nan=True)  # NaN / Infinity tokens, which JSON does not have


def json_text(draw, body: Any) -> str:
    try:
        return spelt(body, draw)
    except (ValueError, RecursionError):
        return repr(body)
