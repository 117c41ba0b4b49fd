"""Hypothesis strategies that mutate a valid input file: structured edits of its parsed tree
(replace a value with a hostile one, delete or add a key, scale a number, repeat a list item,
put NaN/inf where a number was)
and byte-level edits of its text (flips, inserts of YAML/JSON syntax, deletions, truncation)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

HOSTILE_TEXT = [
    "",
    "B",
    "../other/policy.onnx",
    "/etc/passwd",
    "policy.onnx",
    "${x}",
    "${eval:'[[0]*100000]*100000'}",
    "${eval:'1e308*10'}",
    "1e400",
    "nan",
    "-1",
    "0",
    "\u00ff\u2028",
]
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(HOSTILE_TEXT),
)
VALUES = st.one_of(
    LEAVES,
    st.lists(LEAVES, max_size=4),
    st.dictionaries(st.text(max_size=6), LEAVES, max_size=3),
)
SNIPPETS = [
    b"&a ",
    b"*a",
    b": ",
    b"\n- ",
    b"[",
    b"]",
    b"{",
    b"}",
    b".nan",
    b"-.inf",
    b"1e999",
    b"!!python/object/apply:os.system ['true']",
    b"${",
    b"${eval:'9**9**9'}",
    b"\t",
    b"\xff",
    b"\x00",
    b'"',
    b"NaN",
    b"Infinity",
    b"\n",
]


def _paths(tree: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, (*prefix, i))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _get(tree: Any, path: tuple) -> Any:
    for k in path:
        tree = tree[k]
    return tree


@st.composite
def structured(draw: Callable, base: Any) -> Any:
    """1-3 edits of a deep copy of base (a dict/list tree)."""
    tree = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(tree))[1:]
        if not paths:
            break
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "scale", "repeat", "non_finite"]))
        if op == "non_finite":  # a NaN/inf where a number was: the input most likely to pass silently
            numbers = [p for p in paths if _is_number(_get(tree, p))]
            if numbers:
                paths = numbers
        path = draw(st.sampled_from(paths))
        parent, key = _get(tree, path[:-1]), path[-1]
        if op == "non_finite":
            parent[key] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        elif op == "replace":
            parent[key] = draw(VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "add":
            if isinstance(parent, dict):
                parent[draw(st.text(max_size=8))] = draw(VALUES)
            else:
                parent.append(draw(VALUES))
        elif op == "scale":
            v = parent[key]
            if isinstance(v, int | float) and not isinstance(v, bool):
                factor = draw(st.sampled_from([-1, 0, 1e-12, 1e12, 1e300, -1e300]))
                parent[key] = v * factor
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return tree


@st.composite
def text_edits(draw: Callable, text: bytes) -> bytes:
    """1-4 byte-level edits of text."""
    b = bytearray(text)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(b)))
        op = draw(st.sampled_from(["flip", "insert", "insert", "delete", "truncate"]))
        if op == "flip" and i < len(b):
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            b[i:i] = draw(st.one_of(st.sampled_from(SNIPPETS), st.binary(min_size=1, max_size=6)))
        elif op == "delete":
            del b[i : i + draw(st.integers(1, 40))]
        elif op == "truncate":
            del b[i:]
    return bytes(b)


def non_finite_path(v: Any, path: str = "") -> str:
    """Dotted path of the first NaN/inf float in plain data ("" when none)."""
    if isinstance(v, float):
        return "" if math.isfinite(v) else path or "<root>"
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list | tuple) else ()
    for k, x in items:
        found = non_finite_path(x, f"{path}.{k}" if path else str(k))
        if found:
            return found
    return ""


def assert_clean_error(e: BaseException) -> None:
    """The project's error form: a message, on one line."""
    msg = str(e)
    assert msg.strip(), f"{type(e).__name__} without a message"
    assert "\n" not in msg, f"multi-line error: {msg!r}"
