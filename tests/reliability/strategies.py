"""Hypothesis strategies shared by the fuzz tests: JSON values, near-JSON-RPC messages, and
request or response bodies that sit where parsers break."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

__all__ = ["bodies", "json_values", "messages"]

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ids = (
    st.integers()
    | st.integers(min_value=10**18, max_value=10**40)
    | st.text(max_size=30)
    | st.none()
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
)
methods = st.sampled_from(
    ["initialize", "tools/call", "tools/list", "resources/read", "notifications/initialized",
     "notifications/tools/list_changed", "subscriptions/listen", "ping", ""]
) | st.text(max_size=30) | st.integers()  # fmt: skip


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """An object near one of the four JSON-RPC shapes: members kept, dropped or mistyped."""
    message: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        message["jsonrpc"] = draw(st.sampled_from(["2.0", "2.0", "2", "1.0", 2.0, None]))
    for key, values in (("id", ids), ("method", methods), ("params", json_values)):
        if draw(st.booleans()):
            message[key] = draw(values)
    if draw(st.integers(0, 3)) == 0:
        message["result"] = draw(json_values)
    if draw(st.integers(0, 3)) == 0:
        code = draw(st.integers() | st.text(max_size=5) | st.none())
        message["error"] = {"code": code, "message": draw(st.text(max_size=20) | st.integers())}
    if isinstance(message.get("params"), dict) and draw(st.booleans()):
        message["params"]["_meta"] = draw(json_values)
    return message


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Request or response bodies: messages, batches, cut or spliced JSON, deep nesting, junk."""
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        depth = draw(st.integers(1, 200_000))
        open_, close = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return open_ * depth + b"1" + close * depth
    if kind == 2:
        digits = draw(st.integers(1, 6000))
        return b'{"jsonrpc":"2.0","id":' + b"9" * digits + b',"method":"ping"}'
    text = json.dumps(draw(st.lists(messages(), max_size=5)) if kind == 3 else draw(messages()))
    raw = text.encode("utf-8", "surrogatepass")
    if kind == 4 and raw:
        cut = draw(st.integers(0, len(raw)))
        return raw[:cut] + draw(st.binary(max_size=4)) + raw[cut:]
    if kind == 5:
        return draw(st.sampled_from([b"\xef\xbb\xbf", b"", b" \n", b"NaN"])) + raw
    return raw
