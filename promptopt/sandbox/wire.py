"""Values that cross between the sandbox's two processes: plain data, never objects.

`Sandbox.check` runs a model's program in one process and its tests in another
(see "The verdict" in `promptopt.sandbox.runner`). Each call the tests make travels to
the program's process and its return value travels back. The tests' process
must rebuild that value itself from data: an object the program chose (an
`__eq__` that is always True, a str subclass that lies) would let the program
decide its own asserts, and pickle would run the program's code in the tests'
process. So values are JSON, with a small tagged form for what JSON lacks:
`{"$": "tuple", "v": [...]}` (also set, frozenset, dict with any keys, bytes,
complex, float inf/nan, ints too long for JSON). `decode` accepts nothing else
and builds only built-in values.

This file's source is also run verbatim inside both sandboxed interpreters
(which may be an older python3 than promptopt's), so it imports only the
standard library and keeps to syntax Python 3.8 accepts.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

MAX_LINE = 8 * 1024 * 1024
"""The longest message (bytes) a process accepts; longer is an error, not a hang."""
MAX_DEPTH = 200
"""Deepest nesting of containers; deeper values are an error (no RecursionError games)."""
_JSON_INT = 2**62
_COLLECTIONS = {"tuple": tuple, "set": set, "frozenset": frozenset}


class WireError(ValueError):
    """A value that cannot be sent, or a message that is not one this module wrote."""


def encode(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-ready data. Exact built-in types go as they are; subclasses
    of them (an IntEnum, a Counter, a namedtuple) as their base type's value;
    anything else (functions, generators, custom classes) cannot be sent."""
    if depth > MAX_DEPTH:
        raise WireError(f"the value is nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        if -_JSON_INT < value < _JSON_INT:
            return value
        return {"$": "int", "v": format(value, "x")}
    if kind is float:
        if math.isfinite(value):
            return value
        return {"$": "float", "v": repr(value)}
    if kind is list:
        return [encode(item, depth + 1) for item in value]
    if kind is dict:
        pairs = [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]
        return {"$": "dict", "v": pairs}
    for name, collection in _COLLECTIONS.items():
        if kind is collection:
            return {"$": name, "v": [encode(item, depth + 1) for item in value]}
    if kind is bytes:
        return {"$": "bytes", "v": value.hex()}
    if kind is complex:
        return {"$": "complex", "v": [encode(value.real), encode(value.imag)]}
    return encode(_as_builtin(value), depth + 1)


def _as_builtin(value: Any) -> Any:
    """A subclass of a built-in type as that type's value (bool is final: no case)."""
    for base in (int, float, str, bytes, complex, list, tuple, dict, set, frozenset):
        if isinstance(value, base):
            converted = base(value)
            if type(converted) is base:
                return converted
            break
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise WireError(
        f"a {type(value).__name__}, which cannot cross to the other process (only None, bool, "
        "int, float, complex, str, bytes, list, tuple, dict, set and frozenset can)"
    )


def decode(data: Any, depth: int = 0) -> Any:
    """The value `encode` gave `data` for, built from built-in types only."""
    if depth > MAX_DEPTH:
        raise WireError(f"the value is nested more than {MAX_DEPTH} levels deep")
    kind = type(data)
    if data is None or kind in (bool, int, str):
        return data
    if kind is float:
        if not math.isfinite(data):
            raise WireError("a bare non-finite float")
        return data
    if kind is list:
        return [decode(item, depth + 1) for item in data]
    if kind is not dict or set(data) != {"$", "v"}:
        raise WireError(f"not a value this sandbox encodes: {repr(data)[:80]}")
    tag, payload = data["$"], data["v"]
    if tag in _COLLECTIONS and type(payload) is list:
        return _COLLECTIONS[tag](decode(item, depth + 1) for item in payload)
    if tag == "dict" and type(payload) is list:
        result = {}
        for pair in payload:
            if type(pair) is not list or len(pair) != 2:
                raise WireError("a dict entry that is not a pair")
            result[decode(pair[0], depth + 1)] = decode(pair[1], depth + 1)
        return result
    if tag == "int" and type(payload) is str:
        return int(payload, 16)
    if tag == "float" and payload in ("inf", "-inf", "nan"):
        return float(payload)
    if tag == "bytes" and type(payload) is str:
        return bytes.fromhex(payload)
    if tag == "complex" and type(payload) is list and len(payload) == 2:
        real, imag = decode(payload[0], depth + 1), decode(payload[1], depth + 1)
        if type(real) is float and type(imag) is float:
            return complex(real, imag)
    raise WireError(f"not a value this sandbox encodes: {repr(data)[:80]}")


def _no_constant(name: str) -> Any:
    raise WireError(f"a bare {name}")


def dumps(message: dict) -> bytes:
    """One message as one line (its values already `encode`d)."""
    return (json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n").encode()


def loads(line: bytes) -> dict:
    """One message from one line; WireError for anything that is not a JSON object."""
    try:
        message = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError, MemoryError) as exc:
        raise WireError(f"an unreadable message ({type(exc).__name__})") from None
    if type(message) is not dict:
        raise WireError("a message that is not a JSON object")
    return message


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LineReader:
    """Lines from a pipe, each at most `limit` bytes: a writer that never ends its
    line gets an error, not the reader's memory."""

    def __init__(self, fd: int, limit: int = MAX_LINE) -> None:
        self.fd, self.limit, self.rest = fd, limit, b""

    def readline(self) -> bytes | None:
        """The next line without its newline; None at the end of the pipe."""
        chunks, size, chunk = [], 0, self.rest
        while b"\n" not in chunk:
            chunks.append(chunk)
            size += len(chunk)
            if size > self.limit:
                raise WireError(f"a message longer than {self.limit} bytes")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.rest = b""
                return None
        head, self.rest = chunk.split(b"\n", 1)
        line = b"".join(chunks) + head
        if len(line) > self.limit:
            raise WireError(f"a message longer than {self.limit} bytes")
        return line
