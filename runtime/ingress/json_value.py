"""JSON bytes ↔ google.protobuf.Value, for the ingress's JSON-friendly `json` input and output.

Tools that speak protobuf JSON (grpcurl) show a `bytes` field as base64; a `Value` field reads and
prints as plain JSON. The runtime itself keeps JSON bytes (what the log and workers carry), so a
`json` input is turned into the same bytes an `input` would have been and checked alike.
"""

from __future__ import annotations

import json
import math

from google.protobuf import json_format, struct_pb2

__all__ = ["InvalidJsonValue", "json_to_value", "value_to_json"]

_MAX_EXACT = 2 ** 53


class InvalidJsonValue(ValueError):
    """A Value that has no JSON form (a NaN or infinite number)."""


def _plain(value: struct_pb2.Value) -> object:
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise InvalidJsonValue(f"{number} is not a JSON number")
        # Value numbers are doubles: JSON `2` arrives as 2.0, and a handler taking an int wants 2.
        return int(number) if number.is_integer() and abs(number) <= _MAX_EXACT else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {k: _plain(v) for k, v in value.struct_value.fields.items()}
    return [_plain(v) for v in value.list_value.values]


def value_to_json(value: struct_pb2.Value) -> bytes:
    """The JSON bytes of a Value (an unset Value is null); integral numbers are written as integers."""
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":")).encode()


def json_to_value(raw: bytes) -> struct_pb2.Value | None:
    """The Value of JSON bytes (empty is null), or None for bytes protobuf's JSON parser refuses."""
    out = struct_pb2.Value()
    if not raw:
        out.null_value = struct_pb2.NULL_VALUE
        return out
    try:
        json_format.Parse(raw, out)
    except (json_format.ParseError, UnicodeDecodeError, RecursionError):
        return None
    return out
