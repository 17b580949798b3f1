"""The data that crosses between the sandbox's two processes: values round-trip, objects never."""

from __future__ import annotations

import collections
import enum
import math
import os

import pytest

from promptopt.sandbox.wire import (
    MAX_DEPTH,
    LineReader,
    WireError,
    decode,
    dumps,
    encode,
    loads,
    write_all,
)


def _through(value: object) -> object:
    """The value as the other process rebuilds it."""
    return decode(loads(dumps({"v": encode(value)}))["v"])


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -7,
        2**200,
        -(2**70),
        1.5,
        -0.0,
        1e308,
        "tab\tand ünïcode",
        b"\x00\xffbytes",
        3 + 4j,
        [1, [2, (3, 4)], {"a": (5,)}],
        (),
        ("a", 1.0, None),
        {(1, 2): "tuple key", 3: [4], "s": {5}},
        {1, 2, 3},
        frozenset({"x", ("y", 1)}),
        [float("inf"), float("-inf")],
    ],
)
def test_values_round_trip_with_their_types(value: object) -> None:
    back = _through(value)
    assert back == value and type(back) is type(value)
    if not isinstance(value, set | frozenset):  # a set's order is not part of its value
        assert repr(back) == repr(value)  # tuples stay tuples, -0.0 stays -0.0, inside too


def test_nan_round_trips() -> None:
    back = _through([float("nan")])
    assert isinstance(back, list) and math.isnan(back[0])


def test_subclasses_go_as_their_base_type() -> None:
    class Colour(enum.IntEnum):
        RED = 1

    class Liar(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    point = collections.namedtuple("point", "x y")
    for value, plain in (
        (Colour.RED, 1),
        (Liar(0), 0),
        (collections.Counter("aab"), {"a": 2, "b": 1}),
        (point(1, 2), (1, 2)),
        (bytearray(b"ab"), b"ab"),
    ):
        back = _through(value)
        assert back == plain and type(back) is type(plain)
    assert _through(Liar(0)) != 5  # the lie stays in the program's process


def test_objects_cannot_be_sent() -> None:
    class AlwaysEqual:
        def __eq__(self, other: object) -> bool:
            return True

    for value in (AlwaysEqual(), lambda: 1, iter([1]), (x for x in [1]), object(), [AlwaysEqual()]):
        with pytest.raises(WireError, match="cannot cross"):
            encode(value)
    nested: list = []
    nested.append(nested)
    with pytest.raises(WireError, match="nested"):
        encode(nested)


@pytest.mark.parametrize(
    "data",
    [
        {"a": 1},  # untagged objects: only this module's tags
        {"$": "pickle", "v": "gASVAAAA"},
        {"$": "tuple", "v": "not a list"},
        {"$": "dict", "v": [[1]]},
        {"$": "float", "v": "1e400"},
        {"$": "complex", "v": [1, 2]},
        {"$": "tuple", "v": [], "extra": 1},
        float("nan"),
    ],
)
def test_decode_accepts_only_what_encode_writes(data: object) -> None:
    with pytest.raises(WireError):
        decode(data)


def test_decode_refuses_deep_nesting_and_loads_refuses_non_messages() -> None:
    deep: object = 1
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(WireError, match="nested"):
        decode(deep)
    for line in (b"[1, 2]", b'{"v": NaN}', b"\xff\xfe", b"[" * 100_000, b"not json"):
        with pytest.raises(WireError):
            loads(line)


def test_line_reader_splits_lines_and_caps_their_length() -> None:
    read, write = os.pipe()
    try:
        write_all(write, b'{"a":1}\n{"b":2}\npartial')
        os.close(write)
        reader = LineReader(read)
        assert reader.readline() == b'{"a":1}'
        assert reader.readline() == b'{"b":2}'
        assert reader.readline() is None  # an unfinished line at the end is not a message
    finally:
        os.close(read)
    read, write = os.pipe()
    try:
        write_all(write, b"x" * 5000)
        os.close(write)
        with pytest.raises(WireError, match="longer than 1000"):
            LineReader(read, limit=1000).readline()
    finally:
        os.close(read)
