"""The dashboard's actions (POST only, CSRF-checked, refused in read-only mode).

Each action calls the public ``AsyncQueue``/``AsyncJob`` API, then redirects
(303) to the page it came from with a fixed message code (see ``messages``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .._async_queue import AsyncQueue
from ..errors import PyQueueError
from . import security
from .context import Dashboard, dashboard

#: Jobs one bulk action may name.
BULK_LIMIT = 1000
CANCEL_REASON = "cancelled from the dashboard"


class ActionError(Exception):
    """An action that cannot be done as asked: shown on an error page (status 400/409)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _queue_url(request: Request, queue: str, **params: Any) -> str:
    query = f"?{urlencode(params)}" if params else ""
    return f"{_base(request)}/queues/{quote(queue, safe='')}{query}"


def _job_url(request: Request, queue: str, job_id: str, **params: Any) -> str:
    query = f"?{urlencode(params)}" if params else ""
    return f"{_base(request)}/queues/{quote(queue, safe='')}/jobs/{quote(job_id, safe='')}" \
        f"{query}"


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


async def _checked_form(request: Request) -> tuple[Dashboard, FormData]:
    """The form of an allowed action: read-only and CSRF are checked before anything."""
    dash = dashboard(request)
    if dash.settings.read_only:
        raise ActionError("this dashboard is read-only: actions are disabled", 403)
    form = await request.form(max_files=0, max_fields=BULK_LIMIT + 20)
    token = form.get(security.CSRF_FIELD)
    problem = security.csrf_problem(request, token if isinstance(token, str) else None)
    if problem is not None:
        raise ActionError(problem, 403)
    return dash, form


def _field(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value if isinstance(value, str) else default


def _number(form: FormData, name: str, default: float | None = None, *,
            integer: bool = True) -> Any:
    raw = _field(form, name).strip()
    if not raw:
        if default is None:
            raise ActionError(f"{name} is required", 400)
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ActionError(f"{name} must be {kind}, got {raw!r}", 400) from None
    if value < 0:
        raise ActionError(f"{name} must be >= 0, got {raw!r}", 400)
    return value


async def job_action(request: Request) -> Response:
    """retry, promote, remove or cancel one job."""
    dash, form = await _checked_form(request)
    name, job_id = request.path_params["queue"], request.path_params["job_id"]
    queue = await dash.require_queue(name)
    action = _field(form, "action")
    if action in ("priority", "delay"):
        outcome = await _change(queue, job_id, action, form)
    else:
        outcome = await _one_job(queue, job_id, action)
    if outcome == "removed":
        return _redirect(_queue_url(request, name, done="removed"))
    return _redirect(_job_url(request, name, job_id, done=outcome))


async def _one_job(queue: AsyncQueue, job_id: str, action: str) -> str:
    job = await queue.get_job(job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    if action == "retry":
        state = str(await queue.get_job_state(job_id))
        if state not in ("failed", "completed"):
            raise ActionError(f"only failed or completed jobs can be retried; this one is "
                              f"{state}")
        await job.retry(state)
        return "retried"
    if action == "promote":
        await job.promote()
        return "promoted"
    if action == "remove":
        return "removed" if await queue.remove(job_id) else "locked"
    if action == "cancel":
        result = await queue.cancel_job(job_id, CANCEL_REASON)
        return {"requested": "cancel-requested"}.get(result, result)
    raise ActionError(f"unknown action {action!r}", 400)


async def _change(queue: AsyncQueue, job_id: str, action: str, form: FormData) -> str:
    job = await queue.get_job(job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    if action == "priority":
        await job.change_priority(_number(form, "priority"))
        return "priority"
    await job.change_delay(_number(form, "delay", integer=False))
    return "delay"


async def _bulk(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    ids = [v for v in form.getlist("ids") if isinstance(v, str)]
    if not ids:
        raise ActionError("select at least one job", 400)
    if len(ids) > BULK_LIMIT:
        raise ActionError(f"at most {BULK_LIMIT} jobs at once", 400)
    op = _field(form, "op")
    if op not in ("retry", "promote", "remove", "cancel"):
        raise ActionError(f"unknown bulk action {op!r}", 400)
    done = 0
    for job_id in ids:
        try:
            outcome = await _one_job(queue, job_id, op)
        except (HTTPException, ActionError, PyQueueError):
            continue  # gone meanwhile, or not in a state this action applies to
        done += outcome not in ("locked", "finished")
    return _redirect(_queue_url(request, queue.name, state=_field(form, "state", "latest"),
                                done="bulk", n=done))


async def queue_action(request: Request) -> Response:
    """A queue-wide action: pause, resume, drain, clean, retry-all, promote-all,
    obliterate, limits, remove a scheduler, or a bulk action on selected jobs."""
    dash, form = await _checked_form(request)
    name = request.path_params["queue"]
    queue = await dash.require_queue(name)
    action = request.path_params["action"]
    handler = _QUEUE_ACTIONS.get(action)
    if handler is None:
        raise HTTPException(404, "no such action")
    return await handler(request, queue, form)


async def _pause(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    await queue.pause()
    return _redirect(_queue_url(request, queue.name, done="paused"))


async def _resume(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    await queue.resume()
    return _redirect(_queue_url(request, queue.name, done="resumed"))


async def _drain(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    await queue.drain(delayed=_field(form, "delayed") == "1")
    return _redirect(_queue_url(request, queue.name, done="drained"))


async def _clean(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    state = _field(form, "state", "completed")
    grace = _number(form, "grace", 0, integer=False)
    limit = _number(form, "limit", 0)
    removed = await queue.clean(grace, limit, state)
    return _redirect(_queue_url(request, queue.name, state=state, done="cleaned",
                                n=len(removed)))


async def _retry_all(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    state = _field(form, "state", "failed")
    moved = await queue.retry_jobs(state, BULK_LIMIT)
    return _redirect(_queue_url(request, queue.name, state=state, done="retried-all",
                                n=moved))


async def _promote_all(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    moved = await queue.promote_jobs()
    return _redirect(_queue_url(request, queue.name, state="delayed", done="promoted-all",
                                n=moved))


async def _obliterate(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    if _field(form, "confirm") != queue.name:
        raise ActionError("type the queue's name exactly to obliterate it", 400)
    await queue.obliterate(force=_field(form, "force") == "1")
    dashboard(request).forget_queue_list()
    return _redirect(f"{_base(request)}/?done=obliterated")


async def _limits(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    concurrency = _number(form, "concurrency", 0)
    max_jobs = _number(form, "max", 0)
    duration = _number(form, "duration", 0, integer=False)
    if max_jobs and not duration:
        raise ActionError("a rate limit needs a duration in seconds", 400)
    await queue.set_global_concurrency(concurrency or None)
    await queue.set_global_rate_limit(max_jobs or None, duration if max_jobs else 0)
    return _redirect(_queue_url(request, queue.name, done="limits"))


async def _group_limits(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    group = _field(form, "group").strip() or None
    concurrency = _number(form, "concurrency", 0)
    max_jobs = _number(form, "max", 0)
    duration = _number(form, "duration", 0, integer=False)
    if max_jobs and not duration:
        raise ActionError("a rate limit needs a duration in seconds", 400)
    await queue.set_group_concurrency(concurrency or None, group)
    await queue.set_group_rate_limit(max_jobs or None, duration if max_jobs else 0, group)
    return _redirect(_queue_url(request, queue.name, state="groups", done="limits"))


async def _remove_scheduler(request: Request, queue: AsyncQueue, form: FormData) -> Response:
    await queue.remove_job_scheduler(_field(form, "scheduler_id"))
    return _redirect(_queue_url(request, queue.name, state="schedulers",
                                done="scheduler-removed"))


_QUEUE_ACTIONS: dict[str, Callable[[Request, AsyncQueue, FormData], Awaitable[Response]]] = {
    "pause": _pause, "resume": _resume, "drain": _drain, "clean": _clean,
    "retry-all": _retry_all, "promote-all": _promote_all, "obliterate": _obliterate,
    "limits": _limits, "group-limits": _group_limits, "remove-scheduler": _remove_scheduler,
    "bulk": _bulk,
}
