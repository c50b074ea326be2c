"""JSON parsing with limits: bounded nesting depth, finite numbers only, no NaN/Infinity.

Python's json module recurses once per nesting level (50,000 levels end in RecursionError),
reads `1e400` as infinity and accepts the non-standard `NaN`/`Infinity`. Everything that reads
JSON from someone else (request bodies, manifests, envelopes and their payloads) goes through
`loads` here, so such input is refused with a ValueError like any other malformed JSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Deep enough for every document the protocol defines (a few levels), far below recursion.
MAX_JSON_DEPTH = 64

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_KEEP = b'[]{}"'
_INNERMOST = re.compile(rb"\[\]|\{\}")
_DROP = bytes(c for c in range(256) if c not in _KEEP)


class JsonLimitError(ValueError):
    """The text is not JSON within the limits (too deep, non-finite number, bad constant)."""


def too_deep(data: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True if the brackets of `data` (outside strings) nest deeper than `max_depth`, or do not
    pair up (such text is not JSON, and parsing it could recurse just as deep).

    Cheap for ordinary documents: a text with at most `max_depth` brackets cannot be deeper.
    Otherwise the strings are cut out and innermost pairs are removed one level per pass.
    """
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    # Escapes go first (an escaped quote does not end a string), then everything but quotes and
    # brackets, then the strings: what is left is the bracket structure.
    if b"\\" in raw:
        raw = _ESCAPE.sub(b"", raw)
    structure = raw.translate(None, _DROP)
    # Two adjacent quotes are an empty string or the end of one string and the start of the
    # next (with nothing between): dropping them keeps every bracket outside strings where it
    # was, and leaves the regex only strings that hold brackets.
    structure = structure.replace(b'""', b"")
    brackets = _STRING.sub(b"", structure) if b'"' in structure else structure
    for _level in range(max_depth):
        if not brackets:
            return False
        reduced = _INNERMOST.sub(b"", brackets)  # exactly one level: both kinds at once
        if reduced == brackets:
            return True  # unbalanced: not JSON
        brackets = reduced
    return bool(brackets)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonLimitError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise JsonLimitError(f"{name} is not a JSON number")


def loads(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads within the limits; JsonLimitError (a ValueError) for what exceeds them and
    json.JSONDecodeError (also a ValueError) for what is not JSON at all. Integers keep
    Python's own bound (4,300 digits)."""
    if too_deep(data, max_depth):
        raise JsonLimitError(f"JSON is nested deeper than {max_depth} levels (or unbalanced)")
    try:
        return json.loads(data, parse_float=_finite_float, parse_constant=_no_constant)
    except (json.JSONDecodeError, JsonLimitError):
        raise
    except ValueError:  # int(): more digits than sys.get_int_max_str_digits()
        raise JsonLimitError("an integer has too many digits") from None
    except RecursionError:  # pragma: no cover - too_deep() refuses such text first
        raise JsonLimitError(f"JSON is nested deeper than {max_depth} levels") from None


def has_nul(value: Any) -> bool:
    """True if any string in a parsed JSON value (keys included) contains U+0000."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            for k, v in item.items():
                if "\x00" in k:
                    return True
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)
    return False
