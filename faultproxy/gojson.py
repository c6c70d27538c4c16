"""JSON as Toxiproxy reads and writes it, through Go's encoding/json.

Toxiproxy decodes each request body with `json.NewDecoder(body).Decode(&struct)`: only the first
JSON value counts, keys match struct fields case-insensitively, `null` leaves a field as it was,
unknown keys are ignored and a value of the wrong Go type is a 400 whose message names the field.
It answers with `json.Marshal`: no spaces, `<`, `>` and `&` escaped, float32 toxicity printed
with float32 precision.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any, Literal

from faultproxy.errors import BAD_REQUEST_BODY, ApiError

GoType = Literal["string", "bool", "int", "int64", "float32"]
"""The Go types of the fields Toxiproxy decodes (`int` is 64-bit on the platforms it ships for)."""

INT64 = (-(1 << 63), (1 << 63) - 1)
HTML_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


class FloatLiteral(float):
    """A JSON number written with a fraction or exponent: Go refuses it for an integer field,
    quoting it as written."""

    literal: str

    def __new__(cls, literal: str) -> FloatLiteral:
        number = super().__new__(cls, literal)
        number.literal = literal
        return number


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


_DECODER = json.JSONDecoder(parse_float=FloatLiteral, parse_constant=_no_constants)


def read(body: bytes) -> Any:
    """The first JSON value of a request body; an empty one is Go's `EOF`, a cut-off one its
    `unexpected EOF`. Anything after the first value is ignored, as Go's Decoder does."""
    text = body.decode("utf-8", "replace").lstrip(" \t\r\n")
    if not text:
        raise BAD_REQUEST_BODY.joined("EOF")
    try:
        return _DECODER.raw_decode(text)[0]
    except json.JSONDecodeError as exc:
        reason = "unexpected EOF" if exc.pos >= len(text.rstrip()) else exc.msg
        raise BAD_REQUEST_BODY.joined(reason) from None
    except ValueError as exc:
        raise BAD_REQUEST_BODY.joined(str(exc)) from None


def kind_of(value: Any) -> str:
    """The JSON kind Go names in a type error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def mismatch(value: Any, target: str) -> ApiError:
    """Go's UnmarshalTypeError: a JSON value of the wrong kind for `target` (a field or type)."""
    return BAD_REQUEST_BODY.joined(f"json: cannot unmarshal {kind_of(value)} into {target}")


def misfit(number: float, target: str) -> ApiError:
    """Go's UnmarshalTypeError for a number that does not fit a numeric field: quoted as sent."""
    shown = number.literal if isinstance(number, FloatLiteral) else number
    return BAD_REQUEST_BODY.joined(f"json: cannot unmarshal number {shown} into {target}")


def convert(value: Any, go_type: GoType, field: str) -> Any:
    """One field's value in its Go type, or Go's error naming `field` (`Struct.path`)."""
    target = f"Go struct field {field} of type {go_type}"
    kind = kind_of(value)
    if (go_type, kind) in (("string", "string"), ("bool", "bool")):
        return value
    if kind == "number" and go_type in ("int", "int64"):
        if isinstance(value, int) and INT64[0] <= value <= INT64[1]:
            return value
        raise misfit(value, target)
    if kind == "number" and go_type == "float32":
        try:
            return float32(value)
        except OverflowError:
            raise misfit(value, target) from None
    raise mismatch(value, target)


def member(value: Any, name: str) -> Any:
    """The value a JSON object gives struct field `name`: its last key naming it, in any case."""
    if not isinstance(value, dict):
        return None
    return next((item for key, item in reversed(value.items()) if key.lower() == name), None)


def fields(value: Any, schema: Mapping[str, GoType], prefix: str, target: str) -> dict[str, Any]:
    """The fields one JSON object sets on a Go struct (`schema`: JSON name to Go type).

    A key matches a field in any case, a later key winning; `null`, like an absent key, sets
    nothing. `prefix` (`Proxy.`) and `target` (`Go value of type toxiproxy.Proxy`) word the
    errors as Go does.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise mismatch(value, target)
    folded = {name.lower(): name for name in schema}
    found: dict[str, Any] = {}
    for key, item in value.items():
        name = folded.get(key.lower())
        if name is not None and item is not None:
            found[name] = convert(item, schema[name], prefix + name)
    return found


def float32(value: float) -> float:
    """`value` rounded to float32, as Toxiproxy stores toxicity; OverflowError past its range."""
    if not math.isfinite(value):
        raise OverflowError(value)
    return float(struct.unpack("f", struct.pack("f", value))[0])


def float32_json(value: float) -> float | int:
    """A float32 as Go's json.Marshal prints it: the shortest decimal that reads back as the same
    float32, so 1 rather than 1.0 and 0.1 rather than 0.10000000149011612."""
    if value.is_integer() and abs(value) < 1e21:
        return int(value)
    for digits in range(1, 10):
        shortest = float(f"{value:.{digits}g}")
        if float32(shortest) == value:
            return shortest
    return value


def marshal(value: Any) -> bytes:
    """`json.Marshal`: compact, UTF-8, HTML-significant characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.translate(HTML_SAFE).encode()
