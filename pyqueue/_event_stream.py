"""The events stream's entries as :class:`Event` objects, and the small readings of
``XREAD``/``XINFO STREAM`` replies that :class:`~pyqueue.events.QueueEvents` makes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio
import redis.asyncio.cluster

from . import _scripts as S
from ._ops import decode_json
from .connection import mask_url

_JSON_FIELDS = {"returnvalue", "data"}

_STREAM_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")

@dataclass(frozen=True)
class Event:
    """One event: ``name`` (added, waiting, active, progress, completed, failed, ...),
    ``job_id`` (``None`` for queue-wide events), the other fields in ``data``
    (``returnvalue`` and progress ``data`` decoded from JSON), and the stream ``id``.

    A ``gap`` event (written by no one: the reader reports with it that trimmed
    events were lost) has ``job_id=None``, ``data={"missed_after": id,
    "resumed_at": id, "approx_missed": int | None}`` and as ``id`` the
    ``missed_after`` id, so persisting it as a resume point changes nothing."""

    name: str
    job_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""


def parse_entry(entry_id: Any, fields: Any) -> Event:
    """An events-stream entry as an ``Event``."""
    values = S.pairs_to_dict(fields if isinstance(fields, dict) else list(fields))
    name = values.pop("event", "")
    job_id = values.pop("jobId", None)
    data: dict[str, Any] = {}
    for key, value in values.items():
        data[key] = decode_json(value) if key in _JSON_FIELDS else value
    return Event(name, job_id, data, S.text(entry_id))


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def _is_after(a: str, b: str) -> bool:
    """Whether stream id ``a`` is greater than ``b``."""
    return _stream_id(a) > _stream_id(b)


def _describe_client(client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster) -> str:
    """Where ``client`` points, as a URL without its password."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        seeds: Any = client.startup_nodes  # untyped upstream
        return "redis+cluster://" + ",".join(str(name) for name in seeds)
    kwargs = client.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        url = f"unix://{kwargs['path']}?db={db}"
    else:
        scheme = "rediss" if "SSL" in client.connection_pool.connection_class.__name__ \
            else "redis"
        user = kwargs.get("username") or ""
        auth = f"{user}:***@" if kwargs.get("password") else (f"{user}@" if user else "")
        url = f"{scheme}://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"
    return mask_url(url)


def _entries(reply: Any) -> list[Event]:
    events: list[Event] = []
    streams = reply.items() if isinstance(reply, dict) else (reply or [])
    for item in streams:
        entries = item[1]
        if isinstance(entries, list) and entries and isinstance(entries[0], list) \
                and len(entries) == 1 and isinstance(entries[0][0], list):
            entries = entries[0]
        events.extend(parse_entry(entry_id, fields) for entry_id, fields in entries)
    return events


def _info(reply: Any) -> dict[str, Any] | None:
    """``XINFO STREAM`` as a dict with text keys (values as received), or
    ``None`` (no stream yet: an error reply)."""
    if isinstance(reply, dict):
        return {S.text(k): v for k, v in reply.items()}
    if isinstance(reply, list):
        return {S.text(k): v for k, v in zip(reply[::2], reply[1::2], strict=True)}
    return None
