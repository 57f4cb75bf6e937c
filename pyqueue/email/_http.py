"""What the HTTP transports share: one pooled ``httpx.AsyncClient`` and the
mapping of network failures (timeouts, refused or dropped connections) to a
``retry`` verdict. Request bodies and headers (credentials) are never logged
or put into a reason."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from .classify import RETRY, Verdict
from .transport import ProviderError

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the SES and Resend transports need httpx: "
                      "pip install 'pyqueue-redis[providers]'") from exc


def with_env_timeout(values: dict[str, Any], env: Mapping[str, str], variable: str,
                     overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A provider's settings from the environment: ``values``, with ``timeout``
    from ``$variable`` when set (a number, else ``ConfigurationError``), then
    the ``overrides`` that are not ``None``."""
    if env.get(variable):
        try:
            values["timeout"] = float(env[variable])
        except ValueError:
            raise ConfigurationError(
                f"{variable} must be a number, got {env[variable]!r}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def check_url(name: str, url: str) -> str:
    """``url`` without a trailing slash, if it is http(s)."""
    if not url.startswith(("https://", "http://")):
        raise ConfigurationError(f"{name} must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


class HTTPClient:
    """A lazily created, shared ``httpx.AsyncClient`` with the transport's limits."""

    def __init__(self, *, timeout: float, max_connections: int = 20,
                 verify: Any = True) -> None:
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0, got {timeout!r}")
        self.timeout = timeout
        self.max_connections = max_connections
        self.verify = verify
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, verify=self.verify,
                limits=httpx.Limits(max_connections=self.max_connections,
                                    max_keepalive_connections=self.max_connections))
        return self._client

    async def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST; network failures raise ``ProviderError`` with a ``retry`` verdict."""
        try:
            return await self.client().post(url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise ProviderError(Verdict(RETRY, 0, f"timeout after {self.timeout}s: "
                                        f"{type(exc).__name__}")) from None
        except httpx.TransportError as exc:
            raise ProviderError(Verdict(RETRY, 0, f"connection problem: "
                                        f"{type(exc).__name__}: {exc}")) from None

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or ``{}`` when it is not one."""
    try:
        data = json.loads(response.content or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class HTTPTransport:
    """What the HTTP API transports share: their settings (``from_address``,
    ``timeout``, a secret-free ``describe()``) and a connection pool."""

    def __init__(self, settings: Any, *, max_connections: int = 20, verify: Any = True) -> None:
        self.settings = settings
        self.http = HTTPClient(timeout=settings.timeout, max_connections=max_connections,
                               verify=verify)

    @property
    def default_from(self) -> str | None:
        """The sender used when a mail names none."""
        from_address: str | None = self.settings.from_address
        return from_address

    def describe(self) -> str:
        """A one-line summary for logs (no secrets)."""
        text: str = self.settings.describe()
        return text

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.http.close()
