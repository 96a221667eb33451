"""Tests of `mcpr_core.jsonrpc`: the fixtures as the case table, then every edge case."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpr_core import jsonrpc
from mcpr_core.jsonrpc import (
    Batch,
    ErrorObject,
    Invalid,
    InvalidReason,
    Message,
    MessageKind,
    error_body,
    from_object,
    parse,
)
from tests.core.sse_data import sse_data
from tests.fixtures import FIXTURES

# --- fixtures: real traffic --------------------------------------------------------------


def _exchanges() -> list[Any]:
    cases = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            record = json.loads(line)
            cases.append(pytest.param(record, id=f"{path.stem}[{index}]"))
    return cases


def _response_messages(record: dict[str, Any]) -> list[str]:
    response = record["response"]
    headers = {name.lower(): value for name, value in response["headers"]}
    body: str = response["body"]
    if "text/event-stream" in headers.get("content-type", ""):
        return sse_data(body)
    return [body] if body else []


EXCHANGES = _exchanges()

# What each exchange's response holds: the kinds in order, and the final error code.
EXPECTED_RESPONSES: dict[str, tuple[str, int | None]] = {
    "conformance-everything[0]": ("R", None),
    "conformance-everything[1]": ("", None),
    "conformance-everything[2]": ("R", None),
    "conformance-everything[3]": ("NNNR", None),
    "conformance-everything[4]": ("NNNR", None),
    "conformance-everything[5]": ("R", None),
    "conformance-everything[6]": ("R", None),
    "conformance-everything[7]": ("R", None),
    "conformance-everything[8]": ("E", -32601),
    "conformance-everything[9]": ("R", None),
    "mcp-apps-map[0]": ("R", None),
    "mcp-apps-map[1]": ("", None),
    "mcp-apps-map[2]": ("R", None),
    "mcp-apps-map[3]": ("R", None),
    "mcp-apps-map[4]": ("R", None),
    "mcp-apps-map[5]": ("E", -32602),
    "modern-2026-07-28[0]": ("R", None),
    "modern-2026-07-28[1]": ("R", None),
    "modern-2026-07-28[2]": ("R", None),
    "modern-2026-07-28[3]": ("NNNR", None),
    "modern-2026-07-28[4]": ("R", None),
    "modern-2026-07-28[5]": ("R", None),
    "modern-2026-07-28[6]": ("R", None),
    "modern-2026-07-28[7]": ("E", -32020),
    "modern-2026-07-28[8]": ("E", -32022),
    "modern-2026-07-28[9]": ("E", -32601),
    "modern-2026-07-28[10]": ("E", -32020),
    "modern-2026-07-28[11]": ("", None),
    "modern-2026-07-28[12]": ("R", None),
    "modern-2026-07-28[13]": ("N", None),
}
_KIND_LETTER = {
    MessageKind.REQUEST: "Q",
    MessageKind.NOTIFICATION: "N",
    MessageKind.RESULT: "R",
    MessageKind.ERROR: "E",
}


def test_fixture_table_is_complete() -> None:
    """Every recorded exchange has an expected classification, and no expectation is stale."""
    assert {p.id for p in EXCHANGES} == set(EXPECTED_RESPONSES)


@pytest.mark.parametrize("record", [p for p in EXCHANGES if p.values[0]["request"]["body"]])
def test_fixture_request_body_classifies(record: dict[str, Any]) -> None:
    """Each recorded request body is a request, or a notification when it has no id."""
    body = record["request"]["body"]
    decoded = json.loads(body)
    msg = parse(body.encode("utf-8"))
    assert isinstance(msg, Message)
    expected = MessageKind.REQUEST if "id" in decoded else MessageKind.NOTIFICATION
    assert msg.kind is expected
    assert msg.method == decoded["method"]
    assert msg.id == decoded.get("id")
    assert msg.has_id is ("id" in decoded)
    assert msg.params == decoded.get("params")
    assert msg.obj == decoded
    assert (msg.result, msg.error) == (None, None)
    # The Mcp-Method header, where sent, names the same method as the body.
    assert record["request"]["headers"].get("Mcp-Method", msg.method) == msg.method


@pytest.mark.parametrize("record", EXCHANGES)
def test_fixture_response_bodies_classify(record: dict[str, Any], request: Any) -> None:
    """Each JSON or SSE response message classifies as recorded; the final one answers the id."""
    kinds, code = EXPECTED_RESPONSES[request.node.callspec.id]
    messages = [parse(data.encode("utf-8")) for data in _response_messages(record)]
    assert all(isinstance(m, Message) for m in messages)
    got = "".join(_KIND_LETTER[m.kind] for m in messages if isinstance(m, Message))
    assert got == kinds
    final = messages[-1] if messages else None
    if isinstance(final, Message) and final.is_response:
        assert final.id == json.loads(record["request"]["body"])["id"]
        assert final.has_id
    if code is not None:
        assert isinstance(final, Message)
        assert final.error is not None
        assert final.error.code == code
        assert final.error.message


def test_fixture_unsupported_version_error_keeps_data() -> None:
    """The -32022 error keeps its `data` object with the supported versions."""
    record = next(p.values[0] for p in EXCHANGES if p.id == "modern-2026-07-28[8]")
    msg = parse(record["response"]["body"])
    assert isinstance(msg, Message)
    assert msg.error == ErrorObject(
        code=jsonrpc.UNSUPPORTED_PROTOCOL_VERSION,
        message="Unsupported protocol version",
        data={"supported": ["2026-07-28"], "requested": "2099-01-01"},
        has_data=True,
    )


# --- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_id", "expected"),
    [
        ("1", 1),
        ('"1"', "1"),
        ("0", 0),
        ("-7", -7),
        (str(2**64), 2**64),
        (str(-(2**63) - 1), -(2**63) - 1),
        ('""', ""),
        ('"\\u00e9"', "é"),
        ("null", None),
    ],
)
def test_valid_ids_are_kept_exactly(raw_id: str, expected: object) -> None:
    """String, integer (of any size) and null ids are read with their exact type and value."""
    msg = parse(f'{{"jsonrpc":"2.0","id":{raw_id},"method":"ping"}}')
    assert isinstance(msg, Message)
    assert msg.kind is MessageKind.REQUEST
    assert msg.id == expected
    assert type(msg.id) is type(expected)
    assert msg.has_id


@pytest.mark.parametrize("raw_id", ["1.0", "1e3", "-0.5", "true", "false", "[1]", '{"a":1}'])
def test_non_string_non_integer_ids_are_bad(raw_id: str) -> None:
    """Floats (even `1.0`), booleans, arrays and objects are not ids."""
    result = parse(f'{{"jsonrpc":"2.0","id":{raw_id},"method":"ping"}}')
    assert isinstance(result, Invalid)
    assert result.reason is InvalidReason.BAD_ID
    assert result.id is None
    assert "id must be" in result.detail


def test_null_id_with_method_is_a_request() -> None:
    """`"id": null` with a method is a request with a null id, not a notification."""
    msg = parse(b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}')
    assert isinstance(msg, Message)
    assert msg.kind is MessageKind.REQUEST
    assert (msg.id, msg.has_id) == (None, True)


def test_missing_id_with_method_is_a_notification() -> None:
    """A method without an `id` member is a notification."""
    msg = parse(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert isinstance(msg, Message)
    assert msg.kind is MessageKind.NOTIFICATION
    assert (msg.id, msg.has_id, msg.params) == (None, False, None)


# --- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ('{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1}}', MessageKind.REQUEST),
        ('{"jsonrpc":"2.0","method":"m","params":[1]}', MessageKind.NOTIFICATION),
        ('{"jsonrpc":"2.0","id":1,"result":null}', MessageKind.RESULT),
        ('{"jsonrpc":"2.0","id":"a","result":{}}', MessageKind.RESULT),
        ('{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":""}}', MessageKind.ERROR),
        ('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}', MessageKind.ERROR),
        ('{"jsonrpc":"2.0","id":1,"method":"m","extra":true}', MessageKind.REQUEST),
    ],
)
def test_four_shapes(body: str, kind: MessageKind) -> None:
    """Requests, notifications, results and errors are told apart by their members."""
    msg = parse(body)
    assert isinstance(msg, Message)
    assert msg.kind is kind
    assert msg.is_request is (kind is MessageKind.REQUEST)
    assert msg.is_notification is (kind is MessageKind.NOTIFICATION)
    assert msg.is_response is (kind in (MessageKind.RESULT, MessageKind.ERROR))


def test_result_fields() -> None:
    """A result carries its `result` value and no method, params or error."""
    msg = parse(b'{"jsonrpc":"2.0","id":3,"result":{"content":[]}}')
    assert isinstance(msg, Message)
    assert msg.result == {"content": []}
    assert (msg.method, msg.params, msg.error) == (None, None, None)


def test_error_without_id_member_is_an_error() -> None:
    """An error response without `id` is accepted (PROTOCOL §2: "null/absent" when unreadable)."""
    msg = parse(b'{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"}}')
    assert isinstance(msg, Message)
    assert msg.kind is MessageKind.ERROR
    assert (msg.id, msg.has_id) == (None, False)


@pytest.mark.parametrize(
    ("error", "data", "has_data"),
    [
        ('{"code":1,"message":"m"}', None, False),
        ('{"code":1,"message":"m","data":null}', None, True),
        ('{"code":1,"message":"m","data":[1,"x"]}', [1, "x"], True),
    ],
)
def test_error_data_absent_null_or_present(error: str, data: object, has_data: bool) -> None:
    """`has_data` tells an absent `data` member from `"data": null`."""
    msg = parse(f'{{"jsonrpc":"2.0","id":1,"error":{error}}}')
    assert isinstance(msg, Message)
    assert msg.error == ErrorObject(1, "m", data, has_data)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ('{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}', "exactly one"),
        ('{"jsonrpc":"2.0","result":{}}', "a result needs an id"),
        ('{"jsonrpc":"2.0","id":1}', "neither"),
        ('{"jsonrpc":"2.0","id":1,"method":3}', "method must be a string"),
        ('{"jsonrpc":"2.0","id":1,"method":null}', "method must be a string"),
        ('{"jsonrpc":"2.0","id":1,"method":"m","result":{}}', "no result or error"),
        ('{"jsonrpc":"2.0","method":"m","error":{"code":1,"message":"m"}}', "no result or error"),
        ('{"jsonrpc":"2.0","id":1,"error":"boom"}', "error must be"),
        ('{"jsonrpc":"2.0","id":1,"error":null}', "error must be"),
        ('{"jsonrpc":"2.0","id":1,"error":{"code":true,"message":"m"}}', "error must be"),
        ('{"jsonrpc":"2.0","id":1,"error":{"code":1.0,"message":"m"}}', "error must be"),
        ('{"jsonrpc":"2.0","id":1,"error":{"code":"1","message":"m"}}', "error must be"),
        ('{"jsonrpc":"2.0","id":1,"error":{"message":"m"}}', "error must be"),
        ('{"jsonrpc":"2.0","id":1,"error":{"code":1}}', "error must be"),
        ('{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":2}}', "error must be"),
    ],
)
def test_bad_shapes(body: str, detail: str) -> None:
    """Objects that fit none of the four shapes (or two at once) are BAD_SHAPE, keeping the id."""
    result = parse(body)
    assert isinstance(result, Invalid)
    assert result.reason is InvalidReason.BAD_SHAPE
    assert detail in result.detail
    assert result.id == json.loads(body).get("id")


@pytest.mark.parametrize(
    ("body", "id_"),
    [
        ('{"id":1,"method":"m"}', 1),
        ('{"jsonrpc":"1.0","id":"a","method":"m"}', "a"),
        ('{"jsonrpc":2.0,"id":1,"method":"m"}', 1),
        ('{"jsonrpc":null,"method":"m"}', None),
        ('{"jsonrpc":"2.0 ","id":1,"result":{}}', 1),
        ('{"jsonrpc":"1.0","id":1.5,"method":"m"}', None),
    ],
)
def test_wrong_version(body: str, id_: object) -> None:
    """Without `"jsonrpc": "2.0"` an object is WRONG_VERSION; a readable id is still reported."""
    result = parse(body)
    assert isinstance(result, Invalid)
    assert result.reason is InvalidReason.WRONG_VERSION
    assert result.id == id_


@pytest.mark.parametrize("body", ['"x"', "1", "1.5", "null", "true", "false"])
def test_scalars_are_not_objects(body: str) -> None:
    """Valid JSON that is neither an object nor an array is NOT_AN_OBJECT."""
    result = parse(body)
    assert isinstance(result, Invalid)
    assert result.reason is InvalidReason.NOT_AN_OBJECT
    assert result.detail.startswith("expected an object, got ")


@pytest.mark.parametrize(
    ("value", "name"),
    [(None, "null"), (True, "boolean"), (1, "number"), (1.5, "number"), ("s", "string")],
)
def test_not_an_object_detail_names_the_json_type(value: object, name: str) -> None:
    """The detail of NOT_AN_OBJECT names the JSON type that was found."""
    result = from_object(value)
    assert result == Invalid(InvalidReason.NOT_AN_OBJECT, f"expected an object, got {name}")


def test_from_object_names_non_json_types() -> None:
    """A Python value no JSON decoder makes is still reported, by its type name, not raised."""
    result = from_object({"jsonrpc": "2.0", "id": object(), "method": "m"})
    assert isinstance(result, Invalid)
    assert result.reason is InvalidReason.BAD_ID
    assert result.detail.endswith("not object")
    assert from_object([1]) == Invalid(InvalidReason.NOT_AN_OBJECT, "expected an object, got array")


def test_message_keeps_the_decoded_object() -> None:
    """`obj` is the decoded object, with members the classifier does not look at."""
    msg = from_object(obj := {"jsonrpc": "2.0", "id": 1, "method": "m", "x-extra": [1]})
    assert isinstance(msg, Message)
    assert msg.obj is obj


# --- batches -----------------------------------------------------------------------------


def test_batch_members_are_classified_one_by_one() -> None:
    """A batch keeps its members in order, valid and invalid alike."""
    body = b"""[
        {"jsonrpc":"2.0","id":1,"method":"initialize","params":{}},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":2,"result":{}},
        {"jsonrpc":"1.0","id":3,"method":"m"},
        1,
        [],
        {"jsonrpc":"2.0","id":true,"method":"m"}
    ]"""
    result = parse(body)
    assert isinstance(result, Batch)
    kinds = [item.kind if isinstance(item, Message) else item.reason for item in result.items]
    assert kinds == [
        MessageKind.REQUEST,
        MessageKind.NOTIFICATION,
        MessageKind.RESULT,
        InvalidReason.WRONG_VERSION,
        InvalidReason.NOT_AN_OBJECT,
        InvalidReason.NOT_AN_OBJECT,
        InvalidReason.BAD_ID,
    ]
    assert isinstance(result.items[3], Invalid)
    assert result.items[3].id == 3


def test_empty_batch_is_invalid() -> None:
    """`[]` is EMPTY_BATCH, answered by JSON-RPC with a single -32600."""
    assert parse(b" [ ] ") == Invalid(InvalidReason.EMPTY_BATCH, "empty batch")


def test_single_member_batch_is_still_a_batch() -> None:
    """A one-element array is a batch, not the message inside it."""
    result = parse(b'[{"jsonrpc":"2.0","method":"m"}]')
    assert isinstance(result, Batch)
    assert len(result.items) == 1


# --- malformed bytes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"{",
        b'{"jsonrpc":"2.0",}',
        b"{} {}",
        b'{"jsonrpc":"2.0","id":1,"method":"m"} x',
        b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
        b"{'jsonrpc':'2.0'}",
        b"NaN",
        b"[Infinity]",
        b'{"jsonrpc":"2.0","id":1,"result":-Infinity}',
        b'{"jsonrpc":"2.0","id":' + b"1" * 5000 + b',"method":"m"}',
        b'{"jsonrpc":"2.0","id":1,"result":' + b"9" * 100_000 + b"}",
    ],
    ids=lambda b: repr(b[:40]),
)
def test_invalid_json_is_a_parse_error(body: bytes) -> None:
    """Truncated JSON, trailing data, a BOM, NaN/Infinity and oversized integers are PARSE_ERROR."""
    result = parse(body)
    assert isinstance(result, Invalid)
    assert result.reason is InvalidReason.PARSE_ERROR
    assert result.detail.startswith("invalid JSON: ")


@pytest.mark.parametrize(
    "body",
    [b"\xff", b'{"jsonrpc":"\xc3"}', b'"\xed\xa0\x80"', b"\x00\x00\x00{", "{}".encode("utf-16")],
)
def test_undecodable_utf8_is_a_parse_error(body: bytes) -> None:
    """Bytes that are not UTF-8 (including UTF-16 and encoded surrogates) are PARSE_ERROR."""
    result = parse(body)
    assert isinstance(result, Invalid)
    assert result.reason is InvalidReason.PARSE_ERROR
    assert result.detail.startswith(("body is not UTF-8: ", "invalid JSON: "))


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000,
        '{"jsonrpc":"2.0","id":1,"result":' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=["open-arrays", "closed-arrays", "open-objects", "deep-result"],
)
def test_deep_nesting_is_too_deep(body: str) -> None:
    """Nesting past the decoder's recursion limit is TOO_DEEP, not a RecursionError."""
    assert parse(body) == Invalid(InvalidReason.TOO_DEEP, "JSON nested too deeply to decode")


def test_moderate_nesting_is_fine() -> None:
    """Nesting well inside the recursion limit parses normally."""
    msg = parse('{"jsonrpc":"2.0","id":1,"result":' + "[" * 200 + "]" * 200 + "}")
    assert isinstance(msg, Message)
    assert msg.kind is MessageKind.RESULT


# --- input types -------------------------------------------------------------------------

_BODY = '{"jsonrpc":"2.0","id":"é","method":"tools/call","params":{"name":"x"}}'


@pytest.mark.parametrize(
    "body",
    [
        _BODY,
        _BODY.encode(),
        bytearray(_BODY.encode()),
        memoryview(_BODY.encode()),
        memoryview(b"x" + _BODY.encode() + b"x")[1:-1],
        memoryview(bytes(b for c in _BODY.encode() for b in (c, 0)))[::2],  # not contiguous
        "\n\t " + _BODY + "\r\n",
    ],
    ids=["str", "bytes", "bytearray", "memoryview", "sliced", "strided", "whitespace"],
)
def test_every_input_type_parses_the_same(body: str | bytes | bytearray | memoryview) -> None:
    """str, bytes, bytearray and (even non-contiguous) memoryview bodies give the same message."""
    assert parse(body) == parse(_BODY)
    assert isinstance(parse(body), Message)


# --- error_body --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            (1, jsonrpc.INTERNAL_ERROR, "upstream unreachable"),
            b'{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"upstream unreachable"}}',
        ),
        (
            (None, jsonrpc.PARSE_ERROR, "Parse error"),
            b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
        ),
        (
            ("r-1", jsonrpc.HEADER_MISMATCH, "Mcp-Name ≠ body", {"headers": ["Mcp-Name"]}),
            '{"jsonrpc":"2.0","id":"r-1","error":{"code":-32020,"message":"Mcp-Name ≠ body",'
            '"data":{"headers":["Mcp-Name"]}}}'.encode(),
        ),
    ],
)
def test_error_body_is_compact_utf8_json(args: tuple[Any, ...], expected: bytes) -> None:
    """The proxy's own error bodies are compact JSON, UTF-8, with `data` only when given."""
    body = error_body(*args)
    assert body == expected
    msg = parse(body)
    assert isinstance(msg, Message)
    assert msg.kind is MessageKind.ERROR
    assert msg.error is not None
    assert (msg.id, msg.error.code, msg.error.message) == args[:3]


def test_error_code_constants() -> None:
    """The code constants carry the values of JSON-RPC 2.0 and MCP."""
    assert (
        jsonrpc.PARSE_ERROR,
        jsonrpc.INVALID_REQUEST,
        jsonrpc.METHOD_NOT_FOUND,
        jsonrpc.INVALID_PARAMS,
        jsonrpc.INTERNAL_ERROR,
    ) == (-32700, -32600, -32601, -32602, -32603)
    assert (
        jsonrpc.HEADER_MISMATCH,
        jsonrpc.MISSING_CLIENT_CAPABILITY,
        jsonrpc.UNSUPPORTED_PROTOCOL_VERSION,
        jsonrpc.RESOURCE_NOT_FOUND_LEGACY,
    ) == (-32020, -32021, -32022, -32002)


def test_public_names() -> None:
    """Every name in `__all__` exists, so the public surface cannot drift silently."""
    assert all(hasattr(jsonrpc, name) for name in jsonrpc.__all__)


# --- properties --------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_member = st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error"])
message_like = st.dictionaries(
    _member,
    st.sampled_from(["2.0", "1.0", "m", 1, 0, -1, None, True, 1.0])
    | json_values
    | st.fixed_dictionaries({"code": st.integers() | json_values, "message": json_values}),
    max_size=6,
)


@given(st.binary())
def test_parse_never_raises_on_bytes(body: bytes) -> None:
    """Arbitrary bytes always give a value, never an exception."""
    assert isinstance(parse(body), Message | Batch | Invalid)


@given(st.text())
def test_parse_never_raises_on_text(body: str) -> None:
    """Arbitrary text always gives a value, never an exception."""
    assert isinstance(parse(body), Message | Batch | Invalid)


@given(json_values | message_like | st.lists(message_like, max_size=4))
def test_parse_agrees_with_from_object(value: Any) -> None:
    """Parsing a serialised JSON value classifies it exactly as `from_object` does."""
    result = parse(json.dumps(value))
    if isinstance(value, list):
        if value:
            assert result == Batch(tuple(from_object(item) for item in value))
        else:
            assert result == Invalid(InvalidReason.EMPTY_BATCH, "empty batch")
    else:
        assert result == from_object(value)


@given(message_like)
def test_classification_matches_the_members(obj: dict[str, Any]) -> None:
    """Each kind is given only to objects with exactly the members its shape requires."""
    result = from_object(obj)
    if isinstance(result, Invalid):
        return
    assert obj["jsonrpc"] == "2.0"
    assert result.obj is obj
    if result.kind is MessageKind.REQUEST:
        assert isinstance(obj["method"], str)
        assert "id" in obj
        assert "result" not in obj
        assert "error" not in obj
    elif result.kind is MessageKind.NOTIFICATION:
        assert isinstance(obj["method"], str)
        assert "id" not in obj
    elif result.kind is MessageKind.RESULT:
        assert "method" not in obj
        assert "error" not in obj
        assert "id" in obj
    else:
        assert "method" not in obj
        assert "result" not in obj
        assert result.error is not None
        assert result.error.code == obj["error"]["code"]
    assert result.id is None or type(result.id) in (str, int)
