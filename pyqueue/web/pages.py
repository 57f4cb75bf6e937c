"""The dashboard's pages (GET): overview, a queue's tabs, a job, workers, search, health."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from .._async_queue import AsyncQueue
from .._keys import QueueKeys
from ..job import AsyncJob
from . import queries
from .context import Dashboard, dashboard
from .messages import message_for

#: The tabs of a queue page, in order ("latest" mixes every state, newest first).
TABS = ("latest", "active", "waiting", "prioritized", "delayed", "waiting-children",
        "completed", "failed")
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
#: "latest" merges the newest jobs of every state: it reads at most this many per state.
LATEST_DEPTH = 1000
#: Log lines shown on a job page (the newest).
LOG_LINES = 200
#: Jobs a name or data search reads per request, at most.
SEARCH_SCAN = 1000


_EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)


@dataclass
class Row:
    """One job in a list: what the table shows (data already redacted)."""

    job: AsyncJob
    state: str
    preview: str


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        value = default
    return min(max(value, low), high)


async def summaries_of(dash: Dashboard, names: list[str]) -> list[queries.QueueSummary]:
    """The queues' summaries with their warnings; workers counted from pyqueue's
    heartbeats or the worker connections in CLIENT LIST (BullMQ's), the larger."""
    now_ms = int(time.time() * 1000)
    per_queue: dict[str, int] = {}
    for client in await dash.run(queries.client_workers(dash.settings.prefix)):
        per_queue[client.queue] = per_queue.get(client.queue, 0) + 1
    summaries = []
    for name in names:
        summary = await dash.run(queries.queue_summary(dash.keys(name), now_ms))
        summary.workers = max(summary.workers, per_queue.get(name, 0))
        queries.add_warnings(summary)
        summaries.append(summary)
    return summaries


async def overview(request: Request) -> Response:
    """Every queue under the prefix with counts, rates, workers and warnings."""
    dash = dashboard(request)
    names = await dash.queue_names(refresh=request.query_params.get("refresh") == "1")
    summaries = await summaries_of(dash, names)
    policy = await dash.run(queries.eviction_policy())
    global_warnings = []
    if policy is not None and policy != "noeviction":
        global_warnings.append(f"Redis maxmemory-policy is {policy!r}, not 'noeviction': "
                               "Redis may evict queue keys under memory pressure")
    return dash.render(request, "overview.html", {
        "summaries": summaries, "global_warnings": global_warnings,
        "states": queries.DEFAULT_COUNT_STATES, "title": "Queues",
        "message": message_for(request.query_params)})


async def _page_of_state(queue: AsyncQueue, state: str, start: int,
                         end: int) -> list[tuple[AsyncJob, str]]:
    if state != "latest":
        return [(job, state) for job in await queue.get_jobs([state], start, end)]
    merged: list[tuple[AsyncJob, str]] = []
    for each in TABS[1:]:
        merged.extend((job, each) for job in await queue.get_jobs([each], 0, end))
    merged.sort(key=lambda pair: pair[0].timestamp or _EPOCH, reverse=True)
    return merged[start:end + 1]


async def queue_page(request: Request) -> Response:
    """A queue: counts, one tab (a page of one state), schedulers or groups."""
    dash = dashboard(request)
    name = request.path_params["queue"]
    queue = await dash.require_queue(name)
    tab = request.query_params.get("state", "latest")
    if tab not in (*TABS, "schedulers", "groups"):
        raise HTTPException(404, "no such tab")
    size = _int_param(request, "size", DEFAULT_PAGE_SIZE, 1, max(PAGE_SIZES))
    (summary,) = await summaries_of(dash, [name])
    counts = summary.counts
    total = sum(counts.values()) if tab == "latest" else counts.get(tab, 0)
    if tab == "latest":
        total = min(total, LATEST_DEPTH)
    pages = max(math.ceil(total / size), 1)
    page = _int_param(request, "page", 1, 1, pages)
    rows: list[Row] = []
    schedulers: list[dict[str, Any]] = []
    groups: dict[str, dict[str, int]] = {}
    if tab in TABS:
        start = (page - 1) * size
        for job, state in await _page_of_state(queue, tab, start, start + size - 1):
            rows.append(Row(job, state, queries.preview(dash.shown(job.data))))
    elif tab == "schedulers":
        schedulers = await queue.get_job_schedulers()
        for entry in schedulers:
            entry["template"]["data"] = dash.shown(entry["template"]["data"])
    else:
        groups = await queue.get_group_counts()
    return dash.render(request, "queue.html", {
        "title": name, "queue": name, "summary": summary, "tab": tab, "tabs": TABS,
        "rows": rows, "page": page, "pages": pages, "size": size, "sizes": PAGE_SIZES,
        "total": total, "schedulers": schedulers, "groups": groups,
        "latest_depth": LATEST_DEPTH,
        "message": message_for(request.query_params)})


def _parent(dash: Dashboard, job: AsyncJob) -> tuple[str, str] | None:
    key = job.fields.get("parentKey")
    return QueueKeys.parse_job_key(dash.settings.prefix, key) if key else None


async def job_page(request: Request) -> Response:
    """A job: data (redacted), options, progress, logs, result or failure, timeline."""
    dash = dashboard(request)
    name, job_id = request.path_params["queue"], request.path_params["job_id"]
    queue = await dash.require_queue(name)
    job = await queue.get_job(job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    state = str(await queue.get_job_state(job_id))
    keys = dash.keys(name)
    logs, log_count = await dash.run(queries.job_logs(keys, job_id, LOG_LINES))
    locked = await dash.run(queries.job_locked(keys, job_id))
    delay_until = await dash.run(queries.delayed_until(keys, job_id))
    return dash.render(request, "job.html", {
        "title": f"{name} / {job_id}", "queue": name, "job": job, "state": state,
        "data": dash.shown(job.data), "logs": logs, "log_count": log_count,
        "locked": locked, "parent": _parent(dash, job), "delay_until": delay_until,
        "message": message_for(request.query_params)})


async def workers_page(request: Request) -> Response:
    """Who consumes: pyqueue's heartbeats and the worker connections Redis knows."""
    dash = dashboard(request)
    names = await dash.queue_names()
    now = time.time()
    beats = []
    for name in names:
        for worker_id, score, info in await dash.run(queries.worker_beats(dash.keys(name))):
            age = now - score / 1000
            beats.append({"queue": name, "worker_id": worker_id, "age": age, "info": info,
                          "healthy": bool(info.get("consuming"))
                          and age <= queries.HEARTBEAT_STALE})
    clients = [c for c in await dash.run(queries.client_workers(dash.settings.prefix))
               if c.queue in names]
    return dash.render(request, "workers.html", {"title": "Workers", "beats": beats,
                                                 "clients": clients})


async def search_page(request: Request) -> Response:
    """Search by exact job id (every queue), or by name / data substring (bounded scan)."""
    dash = dashboard(request)
    names = await dash.queue_names()
    params = request.query_params
    text = params.get("q", "").strip()
    kind = params.get("kind", "id")
    queue_name = params.get("queue", "") or (names[0] if names else "")
    state = params.get("state", "failed")
    offset = _int_param(request, "offset", 0, 0, 10**9)
    context: dict[str, Any] = {"title": "Search", "names": names, "text": text, "kind": kind,
                               "queue_name": queue_name, "state": state, "states": TABS[1:],
                               "results": [], "scanned": 0, "offset": offset,
                               "next_offset": None, "state_total": 0, "id_hits": [],
                               "scan_limit": SEARCH_SCAN, "searched": False}
    if not text:
        return dash.render(request, "search.html", context)
    context["searched"] = True
    if kind == "id":
        hits = await dash.run(queries.existing_job_queues(dash.settings.prefix, names, text))
        if len(hits) == 1:
            return RedirectResponse(_job_url(request, hits[0], text), status_code=303)
        context["id_hits"] = hits
        return dash.render(request, "search.html", context)
    if state not in TABS[1:]:
        raise HTTPException(404, "no such state")
    if not queue_name:  # no queue at all yet: nothing to search
        return dash.render(request, "search.html", context)
    queue = await dash.require_queue(queue_name)
    jobs = await queue.get_jobs([state], offset, offset + SEARCH_SCAN - 1)
    needle = text.casefold()
    results = []
    for job in jobs:
        shown = dash.shown(job.data)
        haystack = job.name if kind == "name" else queries.preview(shown, limit=1 << 20)
        if needle in haystack.casefold():
            results.append(Row(job, state, queries.preview(shown)))
    counts = await queue.get_job_counts(state)
    context.update(results=results, scanned=len(jobs), state_total=counts.get(state, 0))
    if offset + len(jobs) < counts.get(state, 0):
        context["next_offset"] = offset + SEARCH_SCAN
    return dash.render(request, "search.html", context)


def _job_url(request: Request, queue: str, job_id: str) -> str:
    from urllib.parse import quote

    base = request.scope.get("root_path", "").rstrip("/")
    return f"{base}/queues/{quote(queue, safe='')}/jobs/{quote(job_id, safe='')}"


async def health(request: Request) -> Response:
    """``200 {"status": "ok"}`` while Redis answers, else ``503``."""
    dash = dashboard(request)
    try:
        ok = await dash.run(queries.ping())
    except Exception:
        ok = False
    return JSONResponse({"status": "ok" if ok else "unavailable"},
                        status_code=200 if ok else 503)
