"""The only place that knows script names, KEYS order, ARGV packing and replies.

Every script in ``lua/`` receives the same KEYS (the queue's key set, in
``_keys.QUEUE_SUFFIXES`` order) and the same ARGV layout: the job-key base,
"now" in milliseconds, and a msgpack map of parameters. Scripts signal
failures with negative integers, mapped to exceptions by :func:`check`.

``--@include name`` lines in a script are replaced by ``lua/includes/name.lua``
when the script is loaded; the SHA1 is computed locally, so the first call
is an EVALSHA and no ``SCRIPT LOAD`` round trip is ever needed.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import msgpack

from ._keys import QueueKeys
from ._plan import Command, Script
from ._resp_encode import encode_args
from .errors import (
    JobLockError,
    JobNotFoundError,
    JobStateError,
    PyQueueError,
    QueueBusyError,
)

_INCLUDE = re.compile(r'^--@include\s+"?([\w-]+)"?\s*$', re.MULTILINE)


def _lua_dir() -> Path:
    """``pyqueue/lua`` inside an installed wheel, else the checkout's ``lua/``."""
    packaged = resources.files("pyqueue") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "lua"


def _assemble(name: str, directory: Path, seen: set[str] | None = None) -> str:
    """The script's text with each include inlined once, at its first mention
    (an include that prelude already brought in is not repeated)."""
    seen = set() if seen is None else seen
    text = (directory / f"{name}.lua").read_text(encoding="utf-8")
    includes = directory / "includes" if directory.name != "includes" else directory

    def include(match: re.Match[str]) -> str:
        part = match.group(1)
        if part in seen:
            return ""
        seen.add(part)
        return _assemble(part, includes, seen)

    return _INCLUDE.sub(include, text)


@cache
def load(name: str) -> Script:
    """The script ``lua/<name>.lua`` with its includes inlined."""
    source = _assemble(name, _lua_dir())
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


def pack(params: dict[str, Any]) -> bytes:
    """Pack script parameters; ``None`` values are left out (nil in Lua)."""
    packed: bytes = msgpack.packb({k: v for k, v in params.items() if v is not None})
    return packed


@cache
def _static(name: str, keys: QueueKeys) -> tuple[tuple[Any, ...], bytes, int]:
    """The words of a call that never change, and their RESP encoding."""
    script = load(name)
    key_list = keys.all()
    words = (len(key_list), *key_list, keys.base)
    return words, encode_args(("EVALSHA", script.sha, *words)), len(words) + 2


def call(name: str, keys: QueueKeys, now_ms: int, /, **params: Any) -> Command:
    """A call of script ``name`` on the queue ``keys`` at time ``now_ms``."""
    words, head, head_count = _static(name, keys)
    tail = (int(now_ms), pack(params))
    return Command((*words, *tail), script=load(name), head=head, head_count=head_count,
                   tail=tail)


# --- replies ------------------------------------------------------------------

E_JOB_MISSING = -1
E_LOCK_MISSING = -2
E_NOT_ACTIVE = -3
E_QUEUE_BUSY = -4
E_LOCK_MISMATCH = -6
E_WRONG_STATE = -7
E_JOB_CORRUPT = -8


def check(reply: Any, *, op: str, job_id: str | None = None) -> Any:
    """Raise the exception for a negative integer reply, else return it."""
    if not isinstance(reply, int) or reply >= 0:
        return reply
    where = f"job {job_id!r}" if job_id is not None else "queue"
    if reply == E_JOB_MISSING:
        raise JobNotFoundError(f"{op}: {where} does not exist", job_id)
    if reply == E_LOCK_MISSING:
        raise JobLockError(f"{op}: the lock on {where} is missing (it expired or the job "
                           "was moved back as stalled)", job_id)
    if reply == E_LOCK_MISMATCH:
        raise JobLockError(f"{op}: the lock on {where} is held by another worker", job_id)
    if reply == E_NOT_ACTIVE:
        raise JobStateError(f"{op}: {where} is not active", job_id)
    if reply == E_WRONG_STATE:
        raise JobStateError(f"{op}: {where} is not in the state this operation needs", job_id)
    if reply == E_JOB_CORRUPT:
        raise JobStateError(f"{op}: {where} is damaged (a field or its key is not what "
                            "pyqueue wrote); it was moved to failed, see its failed reason",
                            job_id)
    if reply == E_QUEUE_BUSY:
        raise QueueBusyError(f"{op}: the queue has active jobs; pass force=True to proceed")
    raise PyQueueError(f"{op}: script error code {reply}")


def text(value: Any) -> str:
    """A Redis reply value as ``str`` (clients may or may not decode)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def pairs_to_dict(flat: list[Any] | dict[Any, Any]) -> dict[str, str]:
    """``HGETALL`` as a ``dict[str, str]`` from a flat array or a mapping."""
    if isinstance(flat, dict):
        return {text(k): text(v) for k, v in flat.items()}
    if flat and isinstance(flat[0], str):  # decoded by the connection already
        values = iter(flat)  # hash fields and values are all bulk strings
        return dict(zip(values, values, strict=True))
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


FETCH_OK, FETCH_RATE_LIMITED, FETCH_PAUSED, FETCH_MAX_CONCURRENCY = 0, 1, 2, 3


def decode_fetch(reply: list[Any]) -> tuple[int, int, list[tuple[str, str, dict[str, str]]]]:
    """Decode a fetch reply into ``(status, number, [(id, token, fields)])``."""
    if not reply:
        return FETCH_OK, 0, []
    status, number = int(reply[0]), int(reply[1])
    if len(reply) > 2 and isinstance(reply[2][0], str):  # decoded by the connection
        return status, number, [(j[0], j[1], pairs_to_dict(j[2])) for j in reply[2:]]
    jobs = [(text(j[0]), text(j[1]), pairs_to_dict(j[2])) for j in reply[2:]]
    return status, number, jobs
