"""The request-body depth check: the C scanner over raw bytes agrees with the object walk.

The scanner tests skip locally when the optional extension did not build (no C compiler), saying
so; under CI=true its absence fails test_accelerated_in_ci instead, so CI cannot silently fall back.
"""

from __future__ import annotations

import json
import os
import random
import threading
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api import json_depth
from service.api.json_depth import depth_exceeds as walk
from tests.unit.property_settings import PROPERTY

try:
    from service.api._jsondepth import exceeds as scan
except ImportError:
    scan = None

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
needs_scanner = pytest.mark.skipif(
    scan is None, reason="service.api._jsondepth not built (no C compiler at install): walk only"
)


def nested_arrays(n: int, inner: str = "") -> str:
    return "[" * n + inner + "]" * n


def nested_objects(n: int, inner: str) -> str:
    return '{"a":' * n + inner + "}" * n


# (JSON text, the depth of its deepest value)
CASES: list[tuple[str, int]] = [
    ("5", 1),
    ("-0.5e+10", 1),
    ("true", 1),
    ("null", 1),
    ('""', 1),
    ('"x"', 1),
    ("[]", 1),
    ("{}", 1),
    ("[1]", 2),
    ('[""]', 2),
    ("[null, false]", 2),
    ('{"a": 1}', 2),
    ('{"a": {}}', 2),
    ('{"a": []}', 2),
    ("[{}]", 2),
    ("[[1]]", 3),
    ("[[],[[]]]", 3),
    ('[{"a":[]}]', 3),
    ('[[], {"a": [[]]}, 1]', 4),
    # brackets, quotes and backslashes inside strings are not structure
    ('"[[[[{{{{"', 1),
    ('"]]]]}}}}"', 1),
    (r'"\"[[\""', 1),
    (r'["[[\"]]"]', 2),
    (r'["\\"]', 2),
    (r'["\\", "]"]', 2),
    (r'["\\\\", "\\\"[", 0]', 2),
    (r'[["\\"], "\\\\\\"]', 3),
    (r'{"[{": "}]", "k": ["\\\""]}', 3),
    ('{"a{[": {"b]}": 1}}', 3),
    ('{"\\"": {"\\\\": {}}}', 3),
    # keys sit with their values, deep or not
    ('{"a": 1, "b": {"c": 2}}', 3),
    ('[{"k": "v"}, {"k2": {}}]', 3),
    # unicode, escaped and not
    (r'["\u005b\u007b", "\"[\\"]', 2),
    (r'[["\ud83d\ude00\u0022"]]', 3),
    ('["é漢😀", {"ключ": ["\\ud83d\\ude00", "»["]}]', 4),
    # whitespace everywhere
    (' \n\t[ \r\n [ 1 , { "a" : [ ] } ] \n] \n', 4),
    ('\r\n{\n  "a" :\t[\n    "b"\n  ]\n}\r\n', 3),
    ("  7  ", 1),
    # deep, at and around the default limit of 64
    (nested_arrays(63), 63),
    (nested_arrays(64), 64),
    (nested_arrays(65), 65),
    (nested_arrays(63, "1"), 64),
    (nested_arrays(64, "1"), 65),
    (nested_arrays(64, '"]]]"'), 65),
    (nested_objects(63, "1"), 64),
    (nested_objects(63, "{}"), 64),
    (nested_objects(64, "{}"), 65),
    (nested_objects(64, "[]"), 65),
    ("[" + ",".join([nested_arrays(10)] * 5 + [nested_arrays(64)]) + "]", 65),
    (nested_arrays(1000), 1000),
]


def limits_around(depth: int) -> list[int]:
    return [limit for limit in (depth - 1, depth, depth + 1) if limit >= 1]


@pytest.mark.parametrize(("text", "depth"), CASES)
def test_walk_measures_the_cases(text: str, depth: int) -> None:
    document = orjson.loads(text)  # the service's parser: json.loads recurses too deep for 1,000
    for limit in limits_around(depth):
        assert walk(document, limit) is (depth > limit), (text, limit)


@needs_scanner
@pytest.mark.parametrize(("text", "depth"), CASES)
def test_scanner_measures_the_cases(text: str, depth: int) -> None:
    raw = text.encode()
    for limit in limits_around(depth):
        assert scan(raw, limit) is (depth > limit), (text, limit)
        assert json_depth.exceeds(raw, orjson.loads(raw), limit) is (depth > limit), (text, limit)


@needs_scanner
def test_scanner_takes_any_contiguous_buffer() -> None:
    raw = b"[[1]]"
    for data in (raw, bytearray(raw), memoryview(raw), memoryview(b"xx" + raw)[2:]):
        assert scan(data, 2) is True
        assert scan(data, 3) is False
    with pytest.raises(TypeError):
        scan("[[1]]", 2)  # text, not bytes: the caller hands over the request's raw bytes
    with pytest.raises(BufferError):
        scan(memoryview(b"[[1]]")[::2], 2)  # not contiguous


@needs_scanner
def test_exceeds_reads_the_raw_bytes_when_accelerated() -> None:
    # The document passed is deliberately not the one in raw: only the scanner sees the nesting.
    assert json_depth.ACCELERATED is True
    assert json_depth.exceeds(b"[[1]]", {}, 2) is True
    assert json_depth.exceeds(b"{}", [[[1]]], 2) is False


def test_exceeds_falls_back_to_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_depth, "_jsondepth", None)
    assert json_depth.exceeds(b"{}", [[1]], 2) is True
    assert json_depth.exceeds(b"[[1]]", {}, 2) is False


def test_accelerated_in_ci() -> None:
    if json_depth.ACCELERATED:
        return
    message = "service.api._jsondepth did not build: the depth check walks the parsed body instead"
    if IN_CI:
        pytest.fail(f"{message} (is a C compiler installed? re-run `make install`)")
    pytest.skip(message)


# Text rich in what a byte scanner could mistake for structure.
TRICKY = st.text(
    st.one_of(
        st.sampled_from([*'[]{}",:\\/ \t\n\r\x00\x1fu', "é", "漢", "😀", "\u2028"]),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=12,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    TRICKY,
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(TRICKY, children, max_size=4),
    ),
    max_leaves=40,
)
DUMPS = {
    "compact": lambda v: json.dumps(v).encode(),
    "indent": lambda v: json.dumps(v, indent=2).encode(),
    "utf-8": lambda v: json.dumps(v, ensure_ascii=False).encode(),
    "utf-8 indent": lambda v: json.dumps(v, ensure_ascii=False, indent="\t").encode(),
    "orjson": orjson.dumps,
}


@needs_scanner
@PROPERTY
@given(value=VALUES, limit=st.integers(min_value=1, max_value=12))
def test_scanner_agrees_with_the_walk(value: Any, limit: int) -> None:
    expected = walk(value, limit)
    for style, dumps in DUMPS.items():
        raw = dumps(value)
        assert scan(raw, limit) is expected, (style, raw, limit)


@needs_scanner
@settings(PROPERTY, max_examples=100)
@given(value=VALUES)
def test_scanner_finds_the_exact_depth(value: Any) -> None:
    # Wrapping in one more array moves the deepest value one level down for both.
    raw = json.dumps(value).encode()
    depth = next(d for d in range(1, 100) if not walk(value, d))
    assert scan(raw, depth) is False
    if depth > 1:
        assert scan(raw, depth - 1) is True
    assert scan(b"[" + raw + b"]", depth) is True
    assert scan(b"[" + raw + b"]", depth + 1) is False


@needs_scanner
@PROPERTY
@given(data=st.binary(max_size=512), limit=st.integers(min_value=-3, max_value=70))
def test_scanner_survives_any_bytes(data: bytes, limit: int) -> None:
    assert scan(data, limit) in (True, False)
    # Unbalanced brackets, unterminated strings and trailing backslashes above all.
    noisy = bytes(random.Random(data).choices(b'[]{}"\\\x00 a1,:', k=len(data)))
    assert scan(noisy, limit) in (True, False)


@needs_scanner
def test_scanner_survives_every_truncation() -> None:
    document = (
        b'{"a": [1, "x\\"]", {"b": "\\\\"}, [[[]]]], "c\\u005b": "\\ud83d\\ude00 [{", "d": {"e": [null]}}'
    )
    assert scan(document, 5) is False and scan(document, 4) is True
    for cut in range(len(document) + 1):
        for limit in (1, 2, 4, 5, 64):
            assert scan(document[:cut], limit) in (True, False)
            assert scan(document[cut:], limit) in (True, False)
    for odd in (b"", b" ", b"\x00", b'"', b"\\", b'"\\', b'["\\', b"]]]]", b"}" * 100, b"\x00[\x00"):
        assert scan(odd, 1) in (True, False)
    assert scan(b"", 1) is False  # nothing there, nothing too deep
    assert scan(b"]]][", 1) is False  # closing past the top neither crashes nor goes below zero


def big_body(tail: str) -> bytes:
    """About 5 MB, shaped like a prefetch (mostly strings, some escapes), with `tail` last."""
    entry = {
        "resource": {
            "resourceType": "Observation",
            "note": [{"text": 'a "quoted" \\ note with [brackets] and {braces} ' * 4}],
            "valueQuantity": {"value": 1.5, "unit": "10*9/L"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
        }
    }
    entries = json.dumps([entry] * 13000)
    return f'{{"prefetch": {{"entry": {entries}}}, "tail": {tail}}}'.encode()


PREFETCH_DEPTH = 9


@needs_scanner
def test_scanner_reads_a_5_mb_body_to_the_end() -> None:
    shallow = big_body("1")
    assert len(shallow) > 5_000_000
    # body, prefetch, entry, an entry, resource, code, coding, a coding, its code string
    depth = PREFETCH_DEPTH
    parsed = orjson.loads(shallow)
    assert walk(parsed, depth) is False and walk(parsed, depth - 1) is True
    assert scan(shallow, depth) is False
    assert scan(shallow, depth - 1) is True
    deep = big_body(nested_arrays(64))  # the only value deeper than 64 is in the last bytes
    assert scan(deep, 64) is True and walk(orjson.loads(deep), 64) is True
    assert scan(deep, 65) is False


@needs_scanner
def test_scanner_from_many_threads() -> None:
    # The scan of a large body runs without the GIL: threads must not disturb one another.
    bodies = [(big_body(nested_arrays(n)), n) for n in (10, 64, 65)]
    failures: list[Any] = []

    def check() -> None:
        for raw, n in bodies * 2:
            deepest = max(PREFETCH_DEPTH, n + 1)  # the tail's n arrays start at depth 2
            if scan(raw, deepest) or not scan(raw, deepest - 1):
                failures.append(n)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
