"""One interface for every way out: SMTP (the default), Amazon SES v2, Resend.

A transport takes a built ``EmailMessage``, the envelope sender and
recipients and the mail's ``mail_uid`` (its idempotency key), and either
returns a :class:`~pyqueue.email.sender.SendResult` or raises. SMTP raises
aiosmtplib's errors; the HTTP transports raise :class:`ProviderError`
carrying a :class:`~pyqueue.email.classify.Verdict` they worked out from the
provider's status code and error name, so the worker treats every transport
the same way:

=========================================  =====================================
provider answer                            verdict (what the worker does)
=========================================  =====================================
throttling (HTTP 429, SES                  ``throttle``: pause the whole queue
``TooManyRequestsException``)              (``Retry-After`` when given), no attempt
daily / monthly quota exceeded             ``throttle`` with ``quota``: long pause
other 4xx (bad address, rejected,          ``fail``: at once, no retry
unverified sender, bad credentials)
5xx, timeouts, connection errors           ``retry`` with the job's backoff
=========================================  =====================================

Pick one with ``EmailWorker(transport=...)`` (an object or ``"smtp"``,
``"ses"``, ``"resend"``) or ``$EMAIL_TRANSPORT``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigurationError
from .classify import FAIL, RETRY, THROTTLE, Verdict
from .sender import SendResult

TRANSPORTS = ("smtp", "ses", "resend")


@runtime_checkable
class Transport(Protocol):
    """What the worker needs from a way of sending mail."""

    #: ``smtp``, ``ses``, ``resend`` (for logs and results).
    name: str

    async def send(self, message: EmailMessage, sender: str, recipients: list[str], *,
                   mail_uid: str) -> SendResult:
        """Send ``message`` from ``sender`` to ``recipients``; raise on failure."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    def describe(self) -> str:
        """A one-line summary for logs, without secrets."""
        ...


class ProviderError(Exception):
    """An HTTP provider refused or failed a send; ``verdict`` says what it means."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


def verdict_for_status(status: int, name: str, message: str, *,
                       retry_after: float | None = None,
                       throttle_names: frozenset[str] = frozenset(),
                       quota_names: frozenset[str] = frozenset()) -> Verdict:
    """Map an HTTP error (status, provider error name, message) to a verdict."""
    reason = f"{status} {name}: {message}".strip()
    lowered = message.lower()
    if name in quota_names or (status == 429 and "quota" in lowered):
        return Verdict(THROTTLE, status, reason, quota=True, retry_after=retry_after)
    if status == 429 or name in throttle_names:
        return Verdict(THROTTLE, status, reason, retry_after=retry_after)
    if status >= 500 or status == 408:
        return Verdict(RETRY, status, reason)
    if 400 <= status < 500:
        return Verdict(FAIL, status, reason)
    return Verdict(RETRY, status, reason)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (only the delta-seconds form), if present and sane."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 < seconds <= 86400 else None


def idempotency_key(mail_uid: str) -> str:
    """The provider idempotency key of a mail: its ``mail_uid`` (hashed when long)."""
    import hashlib

    if len(mail_uid) <= 200 and mail_uid.isprintable() and mail_uid.isascii():
        return f"pyqueue-{mail_uid}"
    return "pyqueue-h" + hashlib.sha256(mail_uid.encode()).hexdigest()


def transport_from_env(kind: str | None = None, *, size: int = 1,
                       environ: Mapping[str, str] | None = None, **options: Any) -> Transport:
    """The transport named by ``kind`` or ``$EMAIL_TRANSPORT`` (default ``smtp``),
    configured from the environment."""
    env = os.environ if environ is None else environ
    chosen = (kind or env.get("EMAIL_TRANSPORT") or "smtp").strip().lower()
    if chosen == "smtp":
        from .sender import SMTPSender
        from .settings import SMTPSettings

        return SMTPSender(SMTPSettings.from_env(env), size=size, **options)
    if chosen == "ses":
        from .ses import SESSettings, SESTransport

        return SESTransport(SESSettings.from_env(env), **options)
    if chosen == "resend":
        from .resend import ResendSettings, ResendTransport

        return ResendTransport(ResendSettings.from_env(env), **options)
    raise ConfigurationError(f"EMAIL_TRANSPORT must be one of {', '.join(TRANSPORTS)}, "
                             f"got {chosen!r}")
