"""The dashboard's shared state: settings, the Redis client, the queues it opened, the
templates, and the helpers every page and action uses (redaction, rendering, lookups)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote

import jinja2
import redis.asyncio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .. import _ops_read
from .._async_queue import AsyncQueue
from .._keys import QueueKeys, validate_prefix, validate_queue_name
from .._plan import Plan
from .._runner import run_async
from ..connection import async_client
from ..errors import InvalidQueueNameError
from . import security
from .queries import preview

T = TypeVar("T")
logger = logging.getLogger("pyqueue.web")

#: Seconds the list of queues found by SCAN is reused (``?refresh=1`` rescans).
QUEUE_LIST_TTL = 10.0
#: What a page shows instead of data that ``redact`` failed on.
REDACTION_FAILED = "[hidden: the redact function raised an error]"

AuthHook = Callable[[Request], "bool | Awaitable[bool]"]
Redactor = Callable[[Any], Any]


@dataclass(frozen=True)
class Settings:
    """What ``create_app`` was given, validated."""

    prefix: str = "bull"
    queues: tuple[str, ...] | None = None
    read_only: bool = False
    basic_auth: tuple[str, str] | None = None
    auth: AuthHook | None = None
    redact: Redactor | None = None


def make_settings(*, prefix: str, queues: Sequence[str] | None, read_only: bool,
                  basic_auth: str | tuple[str, str] | None, auth: AuthHook | None,
                  redact: Redactor | None) -> Settings:
    """Validate ``create_app``'s arguments (typed errors, before anything starts)."""
    validate_prefix(prefix)
    names = None
    if queues is not None:
        if isinstance(queues, str):
            raise InvalidQueueNameError("queues must be a list of queue names, not a str")
        names = tuple(validate_queue_name(q) for q in queues)
    if auth is not None and not callable(auth):
        raise TypeError(f"auth must be a callable taking the request, got {auth!r}")
    if redact is not None and not callable(redact):
        raise TypeError(f"redact must be a callable taking the job data, got {redact!r}")
    return Settings(prefix=prefix, queues=names, read_only=bool(read_only),
                    basic_auth=security.parse_basic_auth(basic_auth), auth=auth,
                    redact=redact)


def _ago(value: datetime | float | None) -> str:
    if value is None:
        return ""
    stamp = value.timestamp() if isinstance(value, datetime) else float(value)
    seconds = time.time() - stamp
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return "now"  # pragma: no cover


def _iso(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC" \
        if value else ""


def _pretty(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pyqueue.web", "templates"),
        autoescape=True,  # every template, whatever its name: job data is untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(ago=_ago, iso=_iso, pretty=_pretty, seconds=_seconds,
                       part=lambda s: quote(str(s), safe=""), preview=preview)
    return env


class Dashboard:
    """One dashboard app's state (kept on ``app.state.dashboard``)."""

    def __init__(self, settings: Settings, connection: str | redis.asyncio.Redis | None) -> None:
        self.settings = settings
        self.client, self._owns_client = async_client(connection)
        self._queues: dict[str, AsyncQueue] = {}
        self._names: tuple[float, list[str]] | None = None
        self.env = _environment()

    async def run(self, plan: Plan[T]) -> T:
        """Run a read plan on the dashboard's client."""
        return await run_async(self.client, plan)

    def keys(self, name: str) -> QueueKeys:
        """The key names of queue ``name``."""
        return QueueKeys(self.settings.prefix, name)

    def queue(self, name: str) -> AsyncQueue:
        """The ``AsyncQueue`` for ``name`` (opened once, on the shared client)."""
        found = self._queues.get(name)
        if found is None:
            found = AsyncQueue(name, connection=self.client, prefix=self.settings.prefix,
                               pipelined=False)
            if len(self._queues) < 1000:
                self._queues[name] = found
        return found

    async def queue_names(self, refresh: bool = False) -> list[str]:
        """The queues shown: the configured list, or every queue under the prefix."""
        if self.settings.queues is not None:
            return list(self.settings.queues)
        now = time.monotonic()
        if refresh or self._names is None or now - self._names[0] > QUEUE_LIST_TTL:
            names = await self.run(_ops_read.queue_names(self.settings.prefix))
            self._names = (now, names)
        return list(self._names[1])

    def forget_queue_list(self) -> None:
        """Rescan for queues on the next page (a queue was removed or added)."""
        self._names = None

    async def require_queue(self, name: str) -> AsyncQueue:
        """The queue named in a URL, or a 404 (unknown, not allowed, or not a valid name)."""
        try:
            validate_queue_name(name)
        except InvalidQueueNameError:
            raise HTTPException(404, "no such queue") from None
        if self.settings.queues is not None and name not in self.settings.queues:
            raise HTTPException(404, "no such queue")
        if not await self.run(_ops_read.queue_exists(self.keys(name))):
            raise HTTPException(404, "no such queue")
        return self.queue(name)

    def shown(self, data: Any) -> Any:
        """Job data as the dashboard may show it: through ``redact`` when one is set."""
        if self.settings.redact is None:
            return data
        try:
            return self.settings.redact(data)
        except Exception:
            logger.exception("pyqueue dashboard: the redact function raised")
            return REDACTION_FAILED

    def render(self, request: Request, template: str, context: dict[str, Any],
               status: int = 200) -> HTMLResponse:
        """A page: ``template`` with ``context`` and what every page needs."""
        token = security.csrf_token(request)
        page = self.env.get_template(template).render(
            base=request.scope.get("root_path", "").rstrip("/"),
            read_only=self.settings.read_only, csrf=token, request_path=request.url.path,
            query=request.query_params, **context)
        response = HTMLResponse(page, status_code=status)
        security.set_csrf_cookie(request, response, token)
        return response

    async def close(self) -> None:
        """Close the client if the dashboard made it."""
        if self._owns_client:
            await self.client.aclose()


def dashboard(request: Request) -> Dashboard:
    """The ``Dashboard`` of the app serving ``request``."""
    found: Dashboard = request.app.state.dashboard
    return found
