"""Is a parsed request body nested deeper than settings.max_json_depth?

The top-level value is at depth 1 and each array element or object member value one level below
its container; scalars count, keys do not add a level. Two ways to the same answer:

- the C scanner (service/api/_jsondepth.c), one pass over the raw bytes the parser has already
  accepted: a fraction of the cost of walking the parsed objects, which had become a large part of
  a hook call for a big prefetch;
- the object walk below, the fallback when the optional extension did not build (no C compiler).
"""

from __future__ import annotations

from typing import Any

try:
    from service.api import _jsondepth
except ImportError:  # built only where a C compiler was found at install time
    _jsondepth = None

ACCELERATED: bool = _jsondepth is not None

CONTAINERS = (dict, list)


def exceeds(raw: bytes, document: Any, limit: int) -> bool:
    """`raw` must be the bytes `document` was parsed from: the scanner trusts they are valid JSON."""
    if _jsondepth is not None:
        return _jsondepth.exceeds(raw, limit)
    return depth_exceeds(document, limit)


def depth_exceeds(value: Any, limit: int) -> bool:
    """The object walk. Iterative, so a hostile document cannot exhaust the stack while being measured.

    Level by level, carrying only containers: a large prefetch is mostly strings and numbers, and
    a (value, depth) tuple for each of them made this check cost more than parsing the JSON.
    A scalar still counts as one level below its container.
    """
    level = [value]
    depth = 1
    while level:
        if depth > limit:
            return True
        deeper: list[Any] = []
        has_children = False
        for item in level:
            if isinstance(item, dict):
                children: Any = item.values()
            elif isinstance(item, list):
                children = item
            else:
                continue
            if children:
                has_children = True
                deeper += [c for c in children if isinstance(c, CONTAINERS)]
        if has_children and depth + 1 > limit:
            return True
        level = deeper
        depth += 1
    return False
