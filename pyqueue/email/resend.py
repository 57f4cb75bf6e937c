"""The Resend transport: ``POST /emails`` on Resend's HTTP API.

The built message is taken apart into Resend's fields (``from``, ``to``,
``cc``, ``bcc`` (the envelope recipients not in To or Cc), ``reply_to``,
``subject``, ``text``, ``html``, ``headers`` (the Message-ID made from
``mail_uid`` and the mail's own headers), ``attachments`` (base64)). The
request carries ``Idempotency-Key: pyqueue-<mail_uid>``, so a retry after a
lost response is not sent twice (Resend keeps keys for 24 hours).

Settings from the environment (:meth:`ResendSettings.from_env`):
``RESEND_API_KEY``, ``RESEND_BASE_URL`` (default ``https://api.resend.com``),
``RESEND_FROM`` (else ``EMAIL_FROM``), ``RESEND_TIMEOUT`` (seconds, 30).

Error mapping (Resend's ``name``): ``rate_limit_exceeded`` (429) throttles
the queue for ``Retry-After``; ``daily_quota_exceeded`` and
``monthly_quota_exceeded`` pause it for the quota pause;
``concurrent_idempotent_requests`` (409) retries; other 4xx
(``validation_error``, ``invalid_from_address``, ``invalid_api_key``,
``invalid_idempotent_request``...) fail the job; 5xx and timeouts retry.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from ..errors import ConfigurationError
from ._http import HTTPTransport, check_url, json_body, with_env_timeout
from .classify import RETRY, Verdict
from .sender import SendResult
from .transport import ProviderError, idempotency_key, retry_after_seconds, verdict_for_status

DEFAULT_BASE_URL = "https://api.resend.com"
_QUOTA = frozenset({"daily_quota_exceeded", "monthly_quota_exceeded"})
_THROTTLE = frozenset({"rate_limit_exceeded"})
#: Headers that become Resend fields (or that Resend sets itself).
_FIELD_HEADERS = {"from", "to", "cc", "bcc", "reply-to", "subject", "date", "mime-version",
                  "content-type", "content-transfer-encoding"}


@dataclass(frozen=True)
class ResendSettings:
    """How to reach Resend; the API key stays out of ``repr()`` and logs."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    from_address: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ConfigurationError("Resend needs an API key (RESEND_API_KEY)")
        object.__setattr__(self, "base_url", check_url("RESEND_BASE_URL", self.base_url))

    def describe(self) -> str:
        """A one-line summary for logs (no secrets)."""
        return f"resend via {self.base_url}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 **overrides: Any) -> ResendSettings:
        """Settings from the ``RESEND_*`` variables; ``overrides`` win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "api_key": env.get("RESEND_API_KEY") or "",
            "base_url": env.get("RESEND_BASE_URL") or DEFAULT_BASE_URL,
            "from_address": env.get("RESEND_FROM") or env.get("EMAIL_FROM") or None,
        }
        return cls(**with_env_timeout(values, env, "RESEND_TIMEOUT", overrides))


def _addresses(message: EmailMessage, header: str) -> list[str]:
    values = message.get_all(header) or []
    return [addr for _, addr in getaddresses([str(v) for v in values]) if addr]


def request_json(message: EmailMessage, recipients: list[str]) -> dict[str, Any]:
    """Resend's JSON fields for ``message`` sent to ``recipients``."""
    to = _addresses(message, "To")
    cc = _addresses(message, "Cc")
    shown = {a.lower() for a in to + cc}
    body: dict[str, Any] = {"from": str(message["From"]), "to": to or list(recipients),
                            "subject": str(message.get("Subject", ""))}
    if cc:
        body["cc"] = cc
    bcc = [r for r in recipients if r.lower() not in shown]
    if bcc and to:
        body["bcc"] = bcc
    if message.get("Reply-To"):
        body["reply_to"] = _addresses(message, "Reply-To")
    for subtype in ("plain", "html"):
        part = message.get_body(preferencelist=(subtype,))
        if part is not None and part.get_content_type() == f"text/{subtype}":
            body["text" if subtype == "plain" else "html"] = part.get_content()
    headers = {k: str(v) for k, v in message.items() if k.lower() not in _FIELD_HEADERS}
    if headers:
        body["headers"] = headers
    attachments = []
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        attachments.append({"filename": part.get_filename() or "attachment",
                            "content": base64.b64encode(
                                payload if isinstance(payload, bytes) else b"").decode()})
    if attachments:
        body["attachments"] = attachments
    return body


class ResendTransport(HTTPTransport):
    """Sends through Resend's ``POST /emails`` (see the module docstring)."""

    name = "resend"
    settings: ResendSettings

    async def send(self, message: EmailMessage, sender: str, recipients: list[str], *,
                   mail_uid: str | None = None) -> SendResult:
        """Send one message; raises ``ProviderError`` (see the module docstring)."""
        body = json.dumps(request_json(message, recipients)).encode()
        headers = {"authorization": f"Bearer {self.settings.api_key}",
                   "content-type": "application/json"}
        if mail_uid:
            headers["idempotency-key"] = idempotency_key(mail_uid)
        response = await self.http.post(self.settings.base_url + "/emails", content=body,
                                        headers=headers)
        data = json_body(response)
        if response.status_code == 200 and isinstance(data.get("id"), str):
            return SendResult(list(recipients), response=f"resend {data['id']}",
                              provider_id=data["id"])
        name = str(data.get("name") or "unknown_error")
        text = str(data.get("message") or response.reason_phrase)
        if response.status_code == 409 and name == "concurrent_idempotent_requests":
            raise ProviderError(Verdict(RETRY, 409, f"409 {name}: {text}"))
        raise ProviderError(verdict_for_status(
            response.status_code if response.status_code != 200 else 502, name, text,
            retry_after=retry_after_seconds(response.headers),
            throttle_names=_THROTTLE, quota_names=_QUOTA))
