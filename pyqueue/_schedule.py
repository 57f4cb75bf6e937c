"""Job schedulers (repeatable jobs): validation and plans.

A scheduler is stored as BullMQ stores it (``repeat`` zset, ``repeat:<id>``
hash) and always has exactly one pending iteration, the job
``repeat:<id>:<ms>``. The worker that takes an iteration creates the next
one before running it, so schedules keep running under any mix of pyqueue
and BullMQ workers, and a failing iteration does not stop its schedule.
After downtime the missed slots are skipped: the next iteration is the
first slot after now, never a burst of catch-up runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from . import _cron, _ops
from . import _scripts as S
from ._keys import QueueKeys, check_scheduler_id
from ._plan import Plan, cmd
from .errors import InvalidJobOptionsError
from .options import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    Duration,
    decode_options,
    duration_ms,
    encode_job,
)

_TEMPLATE_KEYS = {"name", "data", "opts"}
_FORBIDDEN_TEMPLATE_OPTS = {"job_id", "delay", "repeat", "deduplication"}


def _epoch_ms(value: object, option: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(moment.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value * 1000)
    raise InvalidJobOptionsError(
        f"{option} must be a datetime or epoch seconds, got {value!r}"
    )


def validate_scheduler_id(value: object) -> str:
    """A scheduler id: a non-empty str without line breaks."""
    if not isinstance(value, str) or not value or "\n" in value or "\r" in value:
        raise InvalidJobOptionsError(f"scheduler_id must be a non-empty str, got {value!r}")
    return check_scheduler_id(value)


def upsert_params(scheduler_id: object, *, pattern: object = None,
                  every: Duration | None = None, tz: object = None, limit: object = None,
                  start_date: object = None, end_date: object = None,
                  immediately: bool = False, template: Mapping[str, Any] | None = None,
                  offset: Duration | None = None,
                  max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """Validate a scheduler's settings; returns the upsert script's parameters
    (``nextMs`` is filled in when the clock is known)."""
    sid = validate_scheduler_id(scheduler_id)
    if (pattern is None) == (every is None):
        raise InvalidJobOptionsError("give exactly one of pattern= (cron) or every= (seconds)")
    if tz is not None and pattern is None:
        raise InvalidJobOptionsError("tz applies to cron patterns only")
    if not isinstance(immediately, bool):
        raise InvalidJobOptionsError(f"immediately must be a bool, got {immediately!r}")
    repeat: dict[str, Any] = {}
    params: dict[str, Any] = {"id": sid}
    if pattern is not None:
        params["pattern"] = repeat["pattern"] = _cron.validate(pattern, tz if isinstance(
            tz, str) or tz is None else None)
        if tz is not None:
            _cron.zone(tz)  # type: ignore[arg-type]
            params["tz"] = repeat["tz"] = tz
    else:
        params["every"] = repeat["every"] = duration_ms(every, "every", allow_zero=False)
    if offset is not None:
        if every is None:
            raise InvalidJobOptionsError("offset applies to every= schedulers only")
        params["offset"] = repeat["offset"] = duration_ms(offset, "offset")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidJobOptionsError(f"limit must be an int >= 1, got {limit!r}")
        params["limit"] = repeat["limit"] = limit
    start_ms = _epoch_ms(start_date, "start_date")
    end_ms = _epoch_ms(end_date, "end_date")
    if start_ms is not None:
        params["startDate"] = repeat["startDate"] = start_ms
    if end_ms is not None:
        if start_ms is not None and end_ms <= start_ms:
            raise InvalidJobOptionsError("end_date must be after start_date")
        params["endDate"] = repeat["endDate"] = end_ms
    template = dict(template or {})
    unknown = set(template) - _TEMPLATE_KEYS
    if unknown:
        raise InvalidJobOptionsError(f"template has unknown keys {sorted(unknown)}; "
                                     "use name, data, opts")
    opts = dict(template.get("opts") or {})
    bad = set(opts) & _FORBIDDEN_TEMPLATE_OPTS
    if bad:
        raise InvalidJobOptionsError(f"template opts cannot set {sorted(bad)}")
    name = template.get("name", sid)
    encoded = encode_job(name, template.get("data", {}), opts,
                         max_payload_bytes=max_payload_bytes)
    # As BullMQ: the hash holds `data` and `opts` only when the template has them.
    stored_opts = dict(encoded.options.raw_opts)
    if "attempts" not in opts:
        stored_opts.pop("attempts", None)
    params.update(name=encoded.name,
                  data=encoded.data if template.get("data") not in (None, {}) else None,
                  opts=json.dumps(stored_opts, separators=(",", ":")) if stored_opts else None,
                  gid=encoded.options.group, repeat=json.dumps(repeat), immediately=immediately)
    return params


def upsert_plan(keys: QueueKeys, clock: _ops.Clock,
                params: dict[str, Any]) -> Plan[tuple[str, int]]:
    """Create or replace the scheduler; returns (pending job id, its ms)."""
    yield from clock.sync(register=True)
    now = clock.now_ms()
    params = dict(params)
    immediately = params.pop("immediately")
    if "pattern" in params:
        start = params.get("startDate") or now
        params["nextMs"] = now if immediately else _cron.first_at_or_after(
            params["pattern"], params.get("tz"), max(start, now + 1))
    (reply,) = yield [S.upsert_job_scheduler(keys, now, params)]
    return S.text(reply[0]), int(reply[1])


def next_iteration_plan(keys: QueueKeys, clock: _ops.Clock, job_id: str, scheduler_id: str,
                        opts: dict[str, Any]) -> Plan[bool]:
    """After taking iteration ``job_id``: create the next one (unless the limit or
    end date is reached). Returns whether one was created."""
    repeat = opts.get("repeat")
    if not isinstance(repeat, dict):
        return False
    yield from clock.sync()
    now = clock.now_ms()
    count = int(repeat.get("count") or 0)
    limit = repeat.get("limit")
    if isinstance(limit, int | float) and count >= limit:
        return False
    end = repeat.get("endDate")
    if isinstance(end, int | float) and now > end:
        return False
    current_ms = _iteration_ms(job_id)
    next_ms = None
    if repeat.get("pattern"):
        next_ms = _cron.next_after(str(repeat["pattern"]), repeat.get("tz"),
                                   max(now, current_ms or 0))
        if isinstance(end, int | float) and next_ms > end:
            return False
    nxt = dict(opts)
    nxt["repeat"] = {**repeat, "count": count + 1}
    (reply,) = yield [S.update_job_scheduler(keys, now, id=scheduler_id, cur=job_id,
                                             opts=json.dumps(nxt, separators=(",", ":")),
                                             next_ms=next_ms)]
    return bool(reply)


def _iteration_ms(job_id: str) -> int | None:
    tail = job_id.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def list_plan(keys: QueueKeys, only: str | None = None) -> Plan[list[dict[str, Any]]]:
    """Schedulers as dicts: id, name, next, pattern or every, tz, limit,
    start_date, end_date, iteration_count, template."""
    if only is None:
        (entries,) = yield [cmd("ZRANGE", keys.repeat, 0, -1, "WITHSCORES")]
        if entries and isinstance(entries[0], list | tuple):  # parsed by the client
            pairs = [(S.text(member), score) for member, score in entries]
        else:
            pairs = [(S.text(entries[i]), entries[i + 1]) for i in range(0, len(entries), 2)]
    else:
        (score,) = yield [cmd("ZSCORE", keys.repeat, only)]
        pairs = [] if score is None else [(only, score)]
    if not pairs:
        return []
    hashes = yield [cmd("HGETALL", keys.scheduler(sid)) for sid, _ in pairs]
    out = []
    for (sid, score), raw in zip(pairs, hashes, strict=True):
        h = S.pairs_to_dict(raw)

        def ms(field: str, h: dict[str, str] = h) -> datetime | None:
            value = h.get(field)
            return datetime.fromtimestamp(int(float(value)) / 1000, tz=timezone.utc) \
                if value else None
        out.append({
            "id": sid,
            "name": h.get("name", sid),
            "next": datetime.fromtimestamp(float(S.text(score)) / 1000, tz=timezone.utc),
            "pattern": h.get("pattern"),
            "every": int(h["every"]) / 1000 if h.get("every") else None,
            "tz": h.get("tz"),
            "limit": int(h["limit"]) if h.get("limit") else None,
            "start_date": ms("startDate"),
            "end_date": ms("endDate"),
            "iteration_count": int(h.get("ic", "0")),
            "template": {"data": _ops.decode_json(h.get("data"), {}),
                         "opts": decode_options(_ops.decode_json(h.get("opts"), {}))},
        })
    return out
