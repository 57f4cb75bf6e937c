"""``create_app``: the dashboard as an ASGI app (Starlette) to serve or mount."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import redis.asyncio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import PyQueueError, RedisError
from . import actions, metrics, pages, security
from .context import AuthHook, Dashboard, Redactor, dashboard, make_settings

logger = logging.getLogger("pyqueue.web")
STATIC = Path(__file__).resolve().parent / "static"


def create_app(connection: str | redis.asyncio.Redis | None = None, *, prefix: str = "bull",
               queues: Sequence[str] | None = None, read_only: bool = False,
               basic_auth: str | tuple[str, str] | None = None, auth: AuthHook | None = None,
               redact: Redactor | None = None) -> Starlette:
    """The dashboard as an ASGI app (Starlette), to run with uvicorn or mount in your app.

    - ``connection``: a URL, a ``redis.asyncio.Redis`` client or ``None`` (as ``Queue``).
    - ``prefix``: the key prefix of the queues shown; ``queues``: only these
      (default: every queue found under the prefix, pyqueue's and BullMQ's).
    - ``read_only``: no action forms, and action requests are refused (403).
    - ``basic_auth``: ``"user:password"`` or ``(user, password)``; ``auth``: a
      callable (or coroutine function) taking the ``Request`` and returning
      ``True`` to allow it. With both, a request must pass both. ``/health``
      stays open for load balancers.
    - ``redact(job_data) -> shown_data``: applied wherever job data appears
      (lists, the job page, search, scheduler templates).

    Arguments are checked here (``ValueError``/``TypeError`` subclasses).
    """
    settings = make_settings(prefix=prefix, queues=queues, read_only=read_only,
                             basic_auth=basic_auth, auth=auth, redact=redact)
    state = Dashboard(settings, connection)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.close()

    routes = [
        Route("/", pages.overview, name="overview"),
        Route("/health", pages.health, name="health"),
        Route("/metrics", metrics.metrics, name="metrics"),
        Route("/workers", pages.workers_page, name="workers"),
        Route("/search", pages.search_page, name="search"),
        Route("/queues/{queue}", pages.queue_page, name="queue"),
        Route("/queues/{queue}/actions/{action}", actions.queue_action, methods=["POST"],
              name="queue_action"),
        Route("/queues/{queue}/jobs/{job_id:path}", pages.job_page, name="job"),
        Route("/queues/{queue}/jobs/{job_id:path}", actions.job_action, methods=["POST"],
              name="job_action"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(security.HeadersMiddleware),
                  Middleware(security.AuthMiddleware, basic_auth=settings.basic_auth,
                             auth=settings.auth)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error,
                                        actions.ActionError: _action_error,
                                        PyQueueError: _pyqueue_error,
                                        Exception: _server_error})
    app.state.dashboard = state
    return app


def _error_page(request: Request, status: int, message: str) -> Response:
    try:
        dash = dashboard(request)
    except AttributeError:  # pragma: no cover - not one of our apps
        return Response(message, status_code=status, media_type="text/plain")
    return dash.render(request, "error.html", {"title": f"Error {status}", "status": status,
                                               "error": message}, status=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return Response("method not allowed", status_code=405, media_type="text/plain")
    return _error_page(request, exc.status_code, str(exc.detail))


async def _action_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, actions.ActionError)
    return _error_page(request, exc.status, str(exc))


async def _pyqueue_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RedisError):  # may name the server: say it in the log only
        logger.warning("pyqueue dashboard: %s %s: Redis error: %s", request.method,
                       request.url.path, exc)
        return _error_page(request, 503, "Redis did not answer as expected (see the server "
                                         "log)")
    # pyqueue's own errors say what was wrong with the request (never a URL or a secret).
    return _error_page(request, 409, str(exc))


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("pyqueue dashboard: %s %s failed: %s", request.method, request.url.path,
                 type(exc).__name__, exc_info=exc)
    return _error_page(request, 500, "internal error (see the server log)")
