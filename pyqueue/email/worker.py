"""``EmailWorker``: a pyqueue ``Worker`` that sends mail jobs (SMTP, SES or Resend).

One attempt: validate the job data, render its template, build the message
(Message-ID from ``mail_uid``), drop suppressed recipients, take a slot in
each ``SendLimit`` window (else delay or drop the mail), take a unit of the
daily quota, send through the transport (SMTP over a reused connection, or
an HTTP provider), and classify any failure (``classify``, ``transport``):

- connection errors, timeouts, SMTP 4xx, HTTP 5xx: raise, so the job retries
  with its backoff;
- throttling replies: pause the whole queue (``worker.rate_limit``, for the
  provider's ``Retry-After`` when it sends one) and hand the job back without
  using an attempt (``RateLimitError``);
- hard bounces: add the address to the suppression list, fail without retry;
- other SMTP 5xx, HTTP 4xx and bad job data: fail without retry
  (``UnrecoverableError``).

A mail that fails for good is copied to the queue's dead-letter queue
(``<queue>-dlq`` unless one was set) by the same script that marks it failed
(``Queue.set_dead_letter_queue``; see ``deadletter``).
"""

from __future__ import annotations

import logging
import os
import random
import ssl
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import DelayedError, RateLimitError, RedisError, UnrecoverableError
from ..job import AsyncJob, JobBase
from ..queue import AsyncQueue
from ..worker import Worker
from . import campaign, deadletter
from .classify import BOUNCE, FAIL, THROTTLE, Verdict, classify_exception, classify_reply
from .message import EmailData, build_message, validate_data
from .quota import DailyQuota
from .sender import SMTPSender
from .sendlimits import OverLimit, SendLimit, SendLimits
from .settings import SMTPSettings
from .suppressions import SuppressionStore, store_from_env
from .templates import Templates
from .transport import Transport, transport_from_env

logger = logging.getLogger("pyqueue.email")


class TemporarySendError(Exception):
    """A failure worth retrying (connection problem, 4xx); the job's backoff applies."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class PermanentSendError(UnrecoverableError):
    """A failure not worth retrying (5xx, hard bounce, bad job data)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict
        #: The dead-letter entry's kind: the verdict's (``fail``, ``bounce``).
        self.dead_letter_kind = verdict.kind


class EmailWorker(Worker):
    """Sends ``EmailData`` jobs through SMTP.

    ``EmailWorker(queue_name="email", connection=..., **worker_options)``. SMTP
    settings come from ``SMTP_*`` variables unless ``smtp=SMTPSettings(...)``
    is given. Extra options: ``templates`` (a ``Templates``, a directory or a
    mapping; Jinja2 needed), ``daily_quota`` (messages per UTC day, default
    ``$SMTP_DAILY_QUOTA`` or none), ``quota_jitter`` (seconds of random delay
    after midnight, 600), ``throttle_pause`` (seconds the queue pauses on a
    throttling reply, 60), ``quota_pause`` (on a provider's quota reply,
    3600), ``dead_letter`` (True: at start, make ``<queue>-dlq`` the queue's
    dead-letter queue unless it has one; False leaves the setting alone),
    ``tls_context`` (an ``ssl.SSLContext`` to use instead of the
    default verifying one), ``transport`` (a :class:`~pyqueue.email.transport.Transport`
    or ``"smtp"``, ``"ses"``, ``"resend"``; default ``$EMAIL_TRANSPORT``, else SMTP),
    ``limits`` (:class:`~pyqueue.email.sendlimits.SendLimit` rules: per-recipient,
    per-user and per-type sliding windows, shared by every worker),
    ``suppressions`` (a :class:`~pyqueue.email.suppressions.SuppressionStore`;
    default: PostgreSQL when ``$EMAIL_SUPPRESSIONS_DSN`` is set, else the queue's
    Redis hash).
    """

    #: The queue ``pyqueue worker pyqueue.email:EmailWorker`` consumes.
    queue_name = "email"

    def __init__(self, name: str = "email", *, smtp: SMTPSettings | None = None,
                 templates: Templates | str | Path | Mapping[str, Mapping[str, str]]
                 | None = None,
                 daily_quota: int | None = None, quota_jitter: float = 600.0,
                 throttle_pause: float = 60.0, quota_pause: float = 3600.0,
                 dead_letter: bool = True, tls_context: ssl.SSLContext | None = None,
                 transport: Transport | str | None = None,
                 limits: Sequence[SendLimit] | None = None,
                 suppressions: SuppressionStore | None = None,
                 **worker_options: Any) -> None:
        if "processor" in worker_options:
            raise TypeError("EmailWorker takes no processor: it sends the mail itself")
        super().__init__(name, **worker_options)
        self.smtp = smtp if smtp is not None else SMTPSettings.from_env()
        self.templates = templates if isinstance(templates, Templates) or templates is None \
            else Templates(templates)
        if daily_quota is None and os.environ.get("SMTP_DAILY_QUOTA"):
            daily_quota = int(os.environ["SMTP_DAILY_QUOTA"])
        self.quota = DailyQuota(self.client, self.keys, daily_quota, quota_jitter) \
            if daily_quota is not None else None
        self.throttle_pause = throttle_pause
        self.quota_pause = quota_pause
        self.dead_letter = dead_letter
        self.sender: Transport = self._make_transport(transport, tls_context)
        self.send_limits = SendLimits(self.client, self.keys, limits, clock=self.clock) \
            if limits else None
        self.suppressions: SuppressionStore = suppressions if suppressions is not None \
            else store_from_env(self.name, connection=self.client, prefix=self.prefix)
        self._queue = AsyncQueue(self.name, connection=self.client, prefix=self.prefix)
        self._dlq_checked = False
        logger.info("email worker for %r: %s", self.name, self.sender.describe())

    def _make_transport(self, transport: Transport | str | None,
                        tls_context: ssl.SSLContext | None) -> Transport:
        """``transport`` as given, else the one ``$EMAIL_TRANSPORT`` names (SMTP)."""
        if transport is not None and not isinstance(transport, str):
            return transport
        kind = (transport or os.environ.get("EMAIL_TRANSPORT") or "smtp").strip().lower()
        if kind == "smtp":
            return SMTPSender(self.smtp, size=self.concurrency, tls_context=tls_context)
        return transport_from_env(kind)

    async def process(self, job: AsyncJob) -> Any:
        """Send one mail (see the module docstring for what happens on failure); a
        campaign's parent (``enqueue_batch(..., flow=True)``) returns its summary."""
        if job.name in (campaign.CAMPAIGN_JOB, campaign.SEAL_JOB):
            return await campaign.run_campaign_job(job)
        return await self._deliver(job)

    async def _deliver(self, job: AsyncJob) -> dict[str, Any]:
        data = self._prepare(job)
        mail_uid = data.get("mail_uid") or job.id
        try:
            msg, envelope_from, recipients = build_message(
                data, default_from=getattr(self.sender, "default_from", None)
                or self.smtp.from_address, mail_uid=mail_uid)
        except ValueError as exc:
            raise PermanentSendError(Verdict(FAIL, 0, f"bad mail: {exc}")) from None
        message_id = str(msg["Message-ID"])
        suppressed = await self.suppressions.suppressed(recipients)
        to_send = [r for r in recipients if r not in suppressed]
        if not to_send:
            logger.info("job %s: every recipient is suppressed; not sent", job.id)
            return {"status": "suppressed", "message_id": message_id, "accepted": [],
                    "suppressed": sorted(suppressed)}
        if self.send_limits is not None:
            over = await self.send_limits.take(job.id, data, to_send)
            if over is not None:
                return await self._over_limit(job, over, message_id)
        if self.quota is not None and not await self.quota.reserve():
            until = self.quota.resume_at()
            logger.info("job %s: daily quota of %d used; delayed to %s", job.id,
                        self.quota.limit, until.isoformat())
            await job.move_to_delayed(until)
            raise DelayedError(f"daily quota reached; delayed to {until.isoformat()}")
        try:
            result = await self.sender.send(msg, envelope_from, to_send, mail_uid=mail_uid)
        except Exception as exc:
            if self.quota is not None:
                await self.quota.release()
            await self._failed_send(job, exc, to_send)
            raise AssertionError("unreachable") from exc  # pragma: no cover
        refused: dict[str, str] = {}
        for addr, (code, text) in result.refused.items():
            verdict = classify_reply(code, text, stage="rcpt")
            refused[addr] = verdict.reason
            if verdict.kind == BOUNCE:
                await self.suppressions.add(addr, f"hard bounce: {verdict.reason}",
                                            source=self.sender.name)
        logger.info("job %s: sent %s to %d recipient(s)", job.id, message_id,
                    len(result.accepted))
        return {"status": "sent", "message_id": message_id, "accepted": result.accepted,
                "refused": refused, "suppressed": sorted(suppressed),
                "response": result.response, "transport": self.sender.name,
                "provider_id": result.provider_id,
                "sent_at": datetime.now(timezone.utc).isoformat()}

    async def _over_limit(self, job: AsyncJob, over: OverLimit,
                          message_id: str) -> dict[str, Any]:
        """Drop the mail (``on_limit="drop"``) or delay it until the window frees."""
        rule = over.rule
        reason = f"over limit {rule.name!r} ({rule.limit} per {rule.window:g}s per {rule.per})"
        if rule.on_limit == "drop":
            logger.info("job %s: dropped: %s", job.id, reason)
            return {"status": "dropped", "reason": reason, "message_id": message_id,
                    "accepted": []}
        # A little jitter so that mails parked on one window do not all wake together.
        seconds = over.wait_ms / 1000 + random.uniform(0, min(over.wait_ms / 10000, 1.0))
        logger.info("job %s: %s; delayed %.3fs", job.id, reason, seconds)
        await job.move_to_delayed(seconds)
        raise DelayedError(f"{reason}; delayed {seconds:.3f}s")

    def _prepare(self, job: JobBase) -> EmailData:
        """Validated job data with its template rendered in."""
        if not isinstance(job.data, Mapping):
            raise PermanentSendError(Verdict(FAIL, 0, "bad mail: job data is not an object"))
        try:
            data = validate_data(job.data)
        except ValueError as exc:
            raise PermanentSendError(Verdict(FAIL, 0, f"bad mail: {exc}")) from None
        template = data.get("template")
        if template is not None:
            if self.templates is None:
                raise PermanentSendError(Verdict(
                    FAIL, 0, f"mail uses template {template!r} but the worker has no "
                             "templates (EmailWorker(templates=...))"))
            try:
                parts = self.templates.render(template, data.get("variables") or {})
            except ValueError as exc:
                raise PermanentSendError(Verdict(FAIL, 0, str(exc))) from None
            for part in ("subject", "html", "text"):
                if part in parts and part not in data:
                    data[part] = parts[part]
            if "subject" in data and ("\r" in data["subject"] or "\n" in data["subject"]):
                raise PermanentSendError(Verdict(FAIL, 0, "rendered subject holds CR/LF"))
        return data

    async def _failed_send(self, job: JobBase, exc: Exception, recipients: list[str]) -> None:
        """Turn a send error into the right signal for the worker (always raises)."""
        verdict = classify_exception(exc)
        if verdict.kind == THROTTLE:
            pause = verdict.retry_after or (
                self.quota_pause if verdict.quota else self.throttle_pause)
            logger.warning("job %s: provider throttling (%s); pausing queue %r for %ss",
                           job.id, verdict.reason, self.name, pause)
            await self.rate_limit(pause)
            raise RateLimitError(verdict.reason) from exc
        if verdict.kind == BOUNCE:
            bounced = [r.recipient for r in getattr(exc, "recipients", [])] or \
                ([exc.recipient] if hasattr(exc, "recipient") else recipients)
            for addr in bounced:
                await self.suppressions.add(addr, f"hard bounce: {verdict.reason}",
                                            source=self.sender.name)
            logger.warning("job %s: hard bounce (%s); suppressed %s", job.id, verdict.reason,
                           ", ".join(bounced))
            raise PermanentSendError(verdict) from exc
        if verdict.kind == FAIL:
            logger.warning("job %s: permanent failure: %s", job.id, verdict.reason)
            raise PermanentSendError(verdict) from exc
        logger.info("job %s: temporary failure: %s", job.id, verdict.reason)
        raise TemporarySendError(verdict) from exc

    async def start(self, burst: bool = False) -> None:
        """Start the worker (see ``Worker.start``); with ``dead_letter``, first make
        ``<queue>-dlq`` the queue's dead-letter queue unless it has one."""
        if self.dead_letter and not self._dlq_checked:
            try:
                name = await deadletter.ensure_async(self._queue)
            except RedisError as exc:  # the start below reports Redis; try again next time
                logger.warning("email worker for %r: dead-letter queue not checked: %s",
                               self.name, exc)
            else:
                self._dlq_checked = True
                logger.info("email worker for %r: dead letters go to %r", self.name, name)
        await super().start(burst)

    async def close(self, force: bool = False) -> None:
        """Close the worker (see ``Worker.close``) and its SMTP connections."""
        await super().close(force)
        await self.sender.close()
        await self._queue.close()
        await self.suppressions.close()
