"""Compact JSON for what goes into Redis (data, progress, return values, opts), refusing
what JSON cannot hold, nesting past ``MAX_JSON_DEPTH`` and text that is not valid Unicode;
and the decode of stored ``opts`` a worker does for every job, cached."""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidJobDataError

_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
#: Deepest nesting of lists and dicts accepted in job data (and progress,
#: return values). Redis's cjson decodes at most 1000 levels, Python's own
#: recursion limit is about as deep, and real job data is a few levels: 64
#: refuses pathological input early, with room to spare for BullMQ's Lua
#: scripts, which decode ``opts`` and never walk ``data``.
MAX_JSON_DEPTH = 64


def _too_deep(value: object) -> bool:
    """True when lists and dicts nest deeper than ``MAX_JSON_DEPTH`` (iterative:
    no recursion, so any depth is measured safely)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        if id(item) in seen:  # a cycle: JSON refuses it with its own message
            continue
        seen.add(id(item))
        stack.extend((child, depth + 1) for child in children)
    return False


def encode_json(value: object, what: str) -> str:
    """Compact JSON, refusing what JSON cannot hold (NaN, sets, objects)."""
    return encode_json_sized(value, what)[0]


def encode_json_sized(value: object, what: str) -> tuple[str, int]:
    """``encode_json`` and the size of the text in UTF-8 bytes."""
    try:
        text = _JSON.encode(value)
    except RecursionError:
        text = ""  # far too deep: refused below
    except (TypeError, ValueError) as exc:
        raise InvalidJobDataError(f"{what} must be JSON-serialisable: {exc}") from exc
    # Counting brackets (in C) spares the walk for all but large or deep values.
    if not text or (text.count("[") + text.count("{") > MAX_JSON_DEPTH and _too_deep(value)):
        raise InvalidJobDataError(
            f"{what} nests lists and dicts deeper than {MAX_JSON_DEPTH} levels (the limit)")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidJobDataError(f"{what} must be valid Unicode text: {exc.reason} at "
                                  f"position {exc.start} of {text!r}") from None
    return text, size


#: Decoded ``opts`` strings whose values are all scalars, so a copy of the
#: cached dict is as good as decoding again: the jobs of one producer mostly
#: share their options, and a worker decodes them for every job it takes.
_FLAT_OPTS: dict[str, dict[str, Any]] = {}
_FLAT_OPTS_MAX = 256


def decode_opts_text(value: str) -> Any:
    """``json.loads(value)``, from :data:`_FLAT_OPTS` when seen before (a fresh
    copy each time: callers may change their dict)."""
    cached = _FLAT_OPTS.get(value)
    if cached is not None:
        return cached.copy()
    decoded = json.loads(value)
    if isinstance(decoded, dict) and not any(isinstance(v, (dict, list))
                                             for v in decoded.values()):
        if len(_FLAT_OPTS) >= _FLAT_OPTS_MAX:
            _FLAT_OPTS.clear()
        _FLAT_OPTS[value] = decoded.copy()
    return decoded
