"""A minimal protobuf wire-format writer.

Only the OpenAPI v2 document needs protobuf (kubectl 1.27 and older fetch
it as gnostic's ``openapi.v2.Document``), and that is write-only, so a few
helpers that emit tagged fields are enough; no generated classes, no
runtime dependency.  Each helper returns the bytes of one field; a message
is the concatenation of its fields, and an embedded message is written with
``message(field, b"".join(parts))``.

proto3 semantics: scalar fields equal to their default (``""``, ``0``,
``False``) are omitted by the ``*_opt`` helpers, as a real encoder would.
Members of a ``oneof`` must be written even when they hold the default, so
use the plain helpers there.
"""

from __future__ import annotations

import struct

VARINT = 0
FIXED64 = 1
LENGTH = 2


def varint(n: int) -> bytes:
    """Base-128 varint; negative numbers as their 64-bit two's complement."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint((field << 3) | wire)


def message(field: int, payload: bytes) -> bytes:
    """A length-delimited field: embedded message, string or bytes."""
    return tag(field, LENGTH) + varint(len(payload)) + payload


def string(field: int, text: str) -> bytes:
    return message(field, text.encode())


def string_opt(field: int, text: str | None) -> bytes:
    return string(field, text) if text else b""


def strings(field: int, texts: list[str] | tuple[str, ...] | None) -> bytes:
    """A repeated string field (never packed)."""
    return b"".join(string(field, t) for t in texts or ())


def integer(field: int, n: int) -> bytes:
    return tag(field, VARINT) + varint(n)


def integer_opt(field: int, n: int | None) -> bytes:
    return integer(field, int(n)) if n else b""


def boolean(field: int, value: bool) -> bytes:
    return tag(field, VARINT) + (b"\x01" if value else b"\x00")


def boolean_opt(field: int, value: bool | None) -> bytes:
    return boolean(field, True) if value else b""


def double(field: int, value: float) -> bytes:
    return tag(field, FIXED64) + struct.pack("<d", float(value))


def double_opt(field: int, value: float | None) -> bytes:
    return double(field, value) if value else b""
