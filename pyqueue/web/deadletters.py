"""The dead-letters view of a queue (one that has a dead-letter queue, or a dead-letter queue
itself): its entries with filters (job name, failed reason, since), and the actions on them
(replay one, the selected, or all that match, optionally paced; purge the same). The list
reads with ``pyqueue._ops_dlq``'s selection (as ``get_dead_letters``); the actions call
``AsyncQueue.replay_dead_letters`` / ``purge_dead_letters``; job data is shown through
``redact``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .. import _ops_dlq
from .._cli_dlq import since_value
from ..errors import ConfigurationError, DeadLetterQueueError
from . import queries
from .actions import BULK_LIMIT, ActionError, _checked_form, _field
from .context import Dashboard, dashboard
from .messages import message_for

#: Entries one page may filter through (the newest beyond it are not listed; replay
#: and purge of "all matching" are not bounded by it).
LIST_LIMIT = 10_000
PAGE_SIZE = 50
#: The filters a list and a "matching" action take, as query/form fields.
FILTER_FIELDS = ("name", "failed_reason", "since")


@dataclass
class DeadLetter:
    """One entry as the table shows it (the original data already redacted)."""

    id: str
    name: str
    origin: str
    job_id: str
    failed_reason: str
    failed_at: datetime | None
    attempts_made: Any
    preview: str


def shown_entry(dash: Dashboard, entry: Mapping[str, Any]) -> dict[str, Any]:
    """A dead-letter entry with the original job's data through ``redact``."""
    return {**entry, "data": dash.shown(entry.get("data"))}


def shown_data(dash: Dashboard, data: Any, in_dead_letter_queue: bool) -> Any:
    """A job's data as a page may show it: in a dead-letter queue, an entry whose
    original data goes through ``redact`` (``redact`` expects the original's shape);
    elsewhere, the data through ``redact``."""
    if in_dead_letter_queue and isinstance(data, Mapping) and "queue" in data:
        return shown_entry(dash, data)
    return dash.shown(data)


def _filter_args(params: Mapping[str, str]) -> dict[str, Any]:
    """The filters of a query or form as ``Queue.*_dead_letters`` keywords."""
    text = {k: (params.get(k) or "").strip() for k in FILTER_FIELDS}
    since: Any = None
    if text["since"]:
        try:
            since = since_value(text["since"])
        except argparse.ArgumentTypeError as exc:
            raise ActionError(f"since: {exc}", 400) from None
    return {"name": text["name"] or None, "failed_reason": text["failed_reason"] or None,
            "since": since}


def _stamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return None


def _row(dash: Dashboard, entry: _ops_dlq.Entry) -> DeadLetter:
    data = entry.data
    return DeadLetter(id=entry.id, name=entry.name, origin=str(data.get("queue", "")),
                      job_id=str(data.get("job_id", "")),
                      failed_reason=str(data.get("failed_reason") or ""),
                      failed_at=_stamp(data.get("failed_at")),
                      attempts_made=data.get("attempts_made", ""),
                      preview=queries.preview(dash.shown(data.get("data"))))


def _url(request: Request, queue: str, params: Mapping[str, Any]) -> str:
    base = str(request.scope.get("root_path", "")).rstrip("/")
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    query = f"?{urlencode(kept)}" if kept else ""
    return f"{base}/queues/{quote(queue, safe='')}/dead-letters{query}"


async def _source(dash: Dashboard, name: str) -> tuple[Any, str]:
    """The queue and the dead-letter queue whose entries it concerns (404: neither)."""
    queue = await dash.require_queue(name)
    try:
        dkeys, _origin = await dash.run(_ops_dlq.source_plan(dash.keys(name)))
    except DeadLetterQueueError:
        raise HTTPException(404, "this queue has no dead-letter queue and is none") from None
    return queue, dkeys.name


async def dead_letters_page(request: Request) -> Response:
    """The entries that pass the filters, oldest first, a page at a time."""
    dash = dashboard(request)
    name = request.path_params["queue"]
    _queue, dlq = await _source(dash, name)
    params = request.query_params
    error = None
    try:
        wanted = _ops_dlq.filters(limit=LIST_LIMIT, **_filter_args(params))
    except ActionError as exc:
        error, wanted = str(exc), _ops_dlq.filters(limit=LIST_LIMIT)
    try:
        asked = max(int(params.get("page", "1")), 1)
    except ValueError:
        asked = 1
    unfiltered = wanted == _ops_dlq.filters(limit=LIST_LIMIT)
    if unfiltered and dlq == name:  # the whole DLQ: read only the page's window
        total, _ = await dash.run(_ops_dlq.window_plan(dash.keys(dlq), 0, 0))
        page = min(asked, max(math.ceil(total / PAGE_SIZE), 1))
        total, window = await dash.run(_ops_dlq.window_plan(
            dash.keys(dlq), (page - 1) * PAGE_SIZE, PAGE_SIZE))
    else:
        _dkeys, entries = await dash.run(_ops_dlq.select_plan(dash.keys(name), wanted))
        total = len(entries)
        page = min(asked, max(math.ceil(total / PAGE_SIZE), 1))
        window = entries[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    pages = max(math.ceil(total / PAGE_SIZE), 1)
    rows = [_row(dash, e) for e in window]
    chosen = {k: params.get(k, "") for k in FILTER_FIELDS}
    return dash.render(request, "dead_letters.html", {
        "title": f"{name} / dead letters", "queue": name, "dlq": dlq, "rows": rows,
        "page": page, "pages": pages, "total": total,
        "capped": not (unfiltered and dlq == name) and total >= LIST_LIMIT,
        "list_limit": LIST_LIMIT, "filters": chosen, "error": error,
        "prev_url": _url(request, name, {**chosen, "page": page - 1}),
        "next_url": _url(request, name, {**chosen, "page": page + 1}),
        "message": message_for(params)})


def _rate(form: FormData) -> float | None:
    raw = _field(form, "rate").strip()
    if not raw:
        return None
    try:
        return _ops_dlq.check_rate(float(raw))
    except (ValueError, ConfigurationError):
        raise ActionError(f"rate must be a number of jobs per second > 0, got {raw!r}",
                          400) from None


def _wanted(form: FormData) -> dict[str, Any]:
    """Which entries the action concerns, as ``Queue.*_dead_letters`` keywords:
    ``scope=selected`` (the ticked ``ids``) or ``scope=matching`` (every entry that
    passes the form's filters)."""
    scope = _field(form, "scope")
    if scope == "selected":
        ids = [v for v in form.getlist("ids") if isinstance(v, str) and v]
        if not ids:
            raise ActionError("select at least one dead letter", 400)
        if len(ids) > BULK_LIMIT:
            raise ActionError(f"at most {BULK_LIMIT} dead letters at once", 400)
        return {"entry_ids": ids}
    if scope == "matching":
        return _filter_args({k: _field(form, k) for k in FILTER_FIELDS})
    raise ActionError(f"unknown scope {scope!r}", 400)


async def dead_letters_action(request: Request) -> Response:
    """``replay`` or ``purge`` (POST, CSRF-checked, refused when read-only): calls
    ``AsyncQueue.replay_dead_letters`` / ``purge_dead_letters``."""
    dash, form = await _checked_form(request)
    name, action = request.path_params["queue"], request.path_params["action"]
    if action not in ("replay", "purge"):
        raise HTTPException(404, "no such action")
    queue, _dlq = await _source(dash, name)
    wanted = _wanted(form)
    if action == "replay":
        new_ids = await queue.replay_dead_letters(rate=_rate(form), **wanted)
        done, count = "dlq-replayed", len(new_ids)
    else:
        count = await queue.purge_dead_letters(**wanted)
        done = "dlq-purged"
    back = {k: _field(form, k) for k in FILTER_FIELDS}
    return RedirectResponse(_url(request, name, {**back, "done": done, "n": count}),
                            status_code=303)


__all__ = ["DeadLetter", "dead_letters_action", "dead_letters_page", "shown_data",
           "shown_entry"]
