"""The dashboard's guards: who may see it (basic auth or your own ``auth`` hook), a CSRF
token on every state-changing request, and strict response headers (CSP: no inline script).

CSRF: the double-submit pattern. A random token lives in an ``HttpOnly``,
``SameSite=Strict`` cookie and in a hidden field of every form; a POST is
accepted only when both are present and equal, and (when the browser sends
one) the ``Origin`` names this host.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import ipaddress
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("pyqueue.web")

CSRF_COOKIE = "pyqueue_csrf"
CSRF_FIELD = "csrf_token"
_TOKEN_BYTES = 32

#: Sent with every response. Scripts and styles only from the dashboard's own
#: static files; no inline script, no framing, forms post only to itself.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
#: Paths served without authentication (a load balancer's probe).
PUBLIC_PATHS = frozenset({"/health"})


def parse_basic_auth(value: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"user:password"`` or ``(user, password)`` as a pair; ``ValueError`` when malformed."""
    if value is None:
        return None
    if isinstance(value, tuple):
        if len(value) != 2 or not all(isinstance(v, str) and v for v in value):
            raise ValueError("basic_auth must be (user, password), both non-empty strings")
        return value[0], value[1]
    if not isinstance(value, str):
        raise TypeError(f"basic_auth must be 'USER:PASSWORD' or a (user, password) pair, "
                        f"got {type(value).__name__}")
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("basic_auth must be 'USER:PASSWORD' with both parts non-empty")
    return user, password


def _basic_ok(header: str | None, expected: tuple[str, str]) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, _, password = decoded.partition(":")
    # Both compared in constant time, always both (no early exit on the user).
    user_ok = hmac.compare_digest(user.encode(), expected[0].encode())
    password_ok = hmac.compare_digest(password.encode(), expected[1].encode())
    return user_ok and password_ok


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to listen on) stays on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AuthMiddleware:
    """Refuses every request (but ``/health``) that ``basic_auth`` or ``auth`` does not allow."""

    def __init__(self, app: ASGIApp, basic_auth: tuple[str, str] | None,
                 auth: Any = None) -> None:
        self.app = app
        self.basic_auth = basic_auth
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.basic_auth is None and self.auth is None):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        route_path = scope["path"][len(scope.get("root_path", "")):] \
            if scope["path"].startswith(scope.get("root_path", "")) else scope["path"]
        if route_path in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if self.basic_auth is not None and \
                not _basic_ok(request.headers.get("authorization"), self.basic_auth):
            response: Response = PlainTextResponse(
                "authentication required", status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="pyqueue dashboard", charset="UTF-8"'})
            await response(scope, receive, send)
            return
        if self.auth is not None and not await self._hook_allows(request):
            response = PlainTextResponse("forbidden", status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _hook_allows(self, request: Request) -> bool:
        try:
            verdict = self.auth(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception:
            logger.exception("pyqueue dashboard: the auth hook raised; request refused")
            return False
        return verdict is True


class HeadersMiddleware:
    """Adds the CSP and the other protective headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in HEADERS if n not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_token(request: Request) -> str:
    """The request's CSRF token: the cookie's, or a new one (set by :func:`set_csrf_cookie`)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if _well_formed(existing):
        return existing
    cached: str | None = getattr(request.state, "new_csrf", None)
    if cached is None:
        cached = secrets.token_urlsafe(_TOKEN_BYTES)
        request.state.new_csrf = cached
    return cached


def _well_formed(token: str) -> bool:
    return 40 <= len(token) <= 64 and all(c.isalnum() or c in "-_" for c in token)


def set_csrf_cookie(request: Request, response: Response, token: str) -> None:
    """Store a new token in the cookie (nothing to do when the browser has it)."""
    if request.cookies.get(CSRF_COOKIE) == token:
        return
    path = request.scope.get("root_path", "").rstrip("/") or "/"
    response.set_cookie(CSRF_COOKIE, token, path=path, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def csrf_problem(request: Request, submitted: str | None) -> str | None:
    """Why a state-changing request is refused, or ``None`` when its token is right."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc.lower() != host.lower():
            return "the request came from another site (Origin does not match)"
    elif origin == "null":
        return "the request came from an opaque origin"
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not _well_formed(cookie) or not submitted:
        return "the CSRF token is missing: reload the page and try again"
    if not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return "the CSRF token is wrong: reload the page and try again"
    return None
