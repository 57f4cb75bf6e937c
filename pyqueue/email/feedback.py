"""The feedback loop: bounce and complaint notices from SES (via SNS) and
Resend (webhooks) turned into suppressions.

``create_feedback_app(...)`` is an ASGI app (Starlette) to run on its own or
mount next to the dashboard::

    app = create_feedback_app("email", connection="redis://...",
                              sns_topic_arns=["arn:aws:sns:eu-west-1:123:ses-feedback"],
                              resend_secret="whsec_...")
    # POST /ses     SNS HTTPS subscription of the SES feedback topic
    # POST /resend  Resend webhook (email.bounced, email.complained)

What a notice does (for the queue's suppression list, ``source`` ``ses`` or
``resend``):

- hard bounce (SES ``Permanent``; Resend ``email.bounced`` unless its type is
  ``Transient``) and complaint: the address is suppressed, with the reason
  and the time;
- soft bounce (SES ``Transient``/``Undetermined``; Resend ``Transient``):
  counted per address for ``soft_bounce_window``; at ``soft_bounce_threshold``
  the address is suppressed (the count lives under a digest of the address);
- anything else (deliveries, opens): accepted and ignored.

Forged, replayed or malformed notices are answered ``400`` and logged with the
reason only (never the body, a signature or a secret). A notice already
processed (same SNS ``MessageId`` or ``svix-id``: a provider's retry) is
answered ``200`` and not counted again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import redis.asyncio

from .._keys import QueueKeys, validate_prefix, validate_queue_name
from ..errors import ConfigurationError
from . import webhook
from .message import bare_address
from .sns import SNS_HOST, Refused, SNSVerifier
from .suppressions import SuppressionStore, address_digest, store_from_env

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the email feedback endpoint needs starlette: "
                      "pip install 'pyqueue-redis[feedback]'") from exc

logger = logging.getLogger("pyqueue.email.feedback")

#: Largest notice accepted (SNS messages are at most 256 KiB).
MAX_BODY = 256 * 1024
#: How long a processed notice's id is remembered (longer than any retry).
SEEN_TTL = 7 * 86400


class Feedback:
    """Applies bounce and complaint notices to a queue's suppression list."""

    def __init__(self, queue_name: str = "email", *,
                 connection: str | redis.asyncio.Redis | None = None, prefix: str = "bull",
                 soft_bounce_threshold: int = 3, soft_bounce_window: float = 7 * 86400.0,
                 suppressions: SuppressionStore | None = None) -> None:
        from ..connection import async_client

        if soft_bounce_threshold < 1 or soft_bounce_window <= 0:
            raise ConfigurationError("soft_bounce_threshold must be >= 1 and "
                                     "soft_bounce_window > 0")
        self.keys = QueueKeys(validate_prefix(prefix), validate_queue_name(queue_name))
        self.client, self._owns = async_client(connection)
        self.suppressions: SuppressionStore = suppressions if suppressions is not None \
            else store_from_env(queue_name, connection=self.client, prefix=prefix)
        self.threshold = soft_bounce_threshold
        self.window_ms = int(soft_bounce_window * 1000)

    async def first_time(self, source: str, message_id: str) -> bool:
        """Mark a notice processed; ``False`` if it was already."""
        key = self.keys.feedback_seen(source, address_digest(message_id))
        return bool(await self.client.set(key, "1", nx=True, ex=SEEN_TTL))

    async def unmark(self, source: str, message_id: str) -> None:
        """Forget that a notice was seen (its processing failed: let the retry in)."""
        await self.client.delete(self.keys.feedback_seen(source, address_digest(message_id)))

    async def apply(self, source: str, message_id: str,
                    notice: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a verified notice once: ``{"status": "duplicate"}`` for a repeat.
        If applying fails the mark is removed and the error raised, so the
        provider's retry (it gets a 500) is processed."""
        if not await self.first_time(source, message_id):
            return {"status": "duplicate"}
        try:
            result = await (self.ses(notice) if source == "ses" else self.resend(notice))
        except BaseException:
            await self.unmark(source, message_id)
            raise
        return {"status": "ok", **result}

    async def hard(self, source: str, addresses: Sequence[str], reason: str) -> list[str]:
        """Suppress ``addresses`` for ``reason``; returns those suppressed."""
        done = []
        for address in addresses:
            try:
                done.append(await self.suppressions.add(address, reason, source=source))
            except ValueError:
                logger.warning("feedback (%s): skipped an invalid address", source)
        return done

    async def soft(self, source: str, addresses: Sequence[str], reason: str) -> list[str]:
        """Count a soft bounce for each address; returns those now suppressed."""
        done = []
        for address in addresses:
            addr = bare_address(address)
            if not addr:
                continue
            key = self.keys.soft_bounces(address_digest(addr))
            pipe = self.client.pipeline(transaction=True)
            pipe.set(key, 0, nx=True, px=self.window_ms)  # the window starts at the first
            pipe.incr(key)
            _, count = await pipe.execute()
            if int(count) >= self.threshold:
                done += await self.hard(source, [addr], f"{count} soft bounces: {reason}")
                await self.client.delete(key)
        return done

    async def ses(self, notice: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one SES notification (the JSON inside the SNS ``Message``)."""
        kind = notice.get("notificationType") or notice.get("eventType")
        if kind == "Bounce":
            bounce = notice.get("bounce") or {}
            addresses = [r.get("emailAddress", "") for r in bounce.get("bouncedRecipients") or []
                         if isinstance(r, dict)]
            reason = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')} bounce (ses)"
            if bounce.get("bounceType") == "Permanent":
                return {"hard": await self.hard("ses", addresses, reason)}
            return {"soft": addresses, "suppressed": await self.soft("ses", addresses, reason)}
        if kind == "Complaint":
            complaint = notice.get("complaint") or {}
            addresses = [r.get("emailAddress", "") for r in
                         complaint.get("complainedRecipients") or [] if isinstance(r, dict)]
            reason = f"complaint (ses): {complaint.get('complaintFeedbackType') or 'abuse'}"
            return {"hard": await self.hard("ses", addresses, reason)}
        return {"ignored": str(kind)}

    async def resend(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one Resend webhook event."""
        kind = event.get("type")
        data = event.get("data") or {}
        to = data.get("to") or []
        addresses = [to] if isinstance(to, str) else [a for a in to if isinstance(a, str)]
        if kind == "email.bounced":
            bounce = data.get("bounce") or {}
            reason = f"{bounce.get('type') or 'Permanent'}/{bounce.get('subType')} bounce " \
                     "(resend)"
            if bounce.get("type") == "Transient":
                return {"soft": addresses,
                        "suppressed": await self.soft("resend", addresses, reason)}
            return {"hard": await self.hard("resend", addresses, reason)}
        if kind == "email.complained":
            return {"hard": await self.hard("resend", addresses, "complaint (resend)")}
        return {"ignored": str(kind)}

    async def close(self) -> None:
        """Release the Redis connection (if created here) and the store's."""
        await self.suppressions.close()
        if self._owns:
            await self.client.aclose()


def _refuse(source: str, request: Request, reason: str) -> JSONResponse:
    client = request.client.host if request.client else "?"
    logger.warning("feedback (%s): refused a notice from %s: %s", source, client, reason)
    return JSONResponse({"status": "refused", "reason": reason}, status_code=400)


async def _body(request: Request) -> bytes | None:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return None
    body = await request.body()
    return body if len(body) <= MAX_BODY else None


def create_feedback_app(queue_name: str = "email", *,
                        connection: str | redis.asyncio.Redis | None = None,
                        prefix: str = "bull", sns_topic_arns: Sequence[str] | None = None,
                        resend_secret: str | None = None, soft_bounce_threshold: int = 3,
                        soft_bounce_window: float = 7 * 86400.0, sns_max_age: float = 3600.0,
                        resend_tolerance: float = 300.0, sns_host_pattern: str = SNS_HOST,
                        tls_verify: Any = True,
                        suppressions: SuppressionStore | None = None) -> Starlette:
    """The feedback ASGI app (see the module docstring). Topics default to
    ``$SES_SNS_TOPIC_ARNS`` (comma-separated), the secret to
    ``$RESEND_WEBHOOK_SECRET``; at least one of the two is needed. Suppressions
    go to ``suppressions`` (default: PostgreSQL when ``$EMAIL_SUPPRESSIONS_DSN``
    is set, else the queue's Redis hash). The app's
    ``state.feedback`` is the :class:`Feedback` it writes with."""
    if sns_topic_arns is None and os.environ.get("SES_SNS_TOPIC_ARNS"):
        sns_topic_arns = [a.strip() for a in os.environ["SES_SNS_TOPIC_ARNS"].split(",")
                          if a.strip()]
    if resend_secret is None:
        resend_secret = os.environ.get("RESEND_WEBHOOK_SECRET") or None
    if not sns_topic_arns and not resend_secret:
        raise ConfigurationError("the feedback endpoint needs SNS topic ARNs "
                                 "(SES_SNS_TOPIC_ARNS) or a Resend webhook secret "
                                 "(RESEND_WEBHOOK_SECRET)")
    key = webhook.webhook_key(resend_secret) if resend_secret else None
    verifier = SNSVerifier(sns_topic_arns, max_age=sns_max_age, host_pattern=sns_host_pattern,
                           verify=tls_verify) if sns_topic_arns else None
    feedback = Feedback(queue_name, connection=connection, prefix=prefix,
                        soft_bounce_threshold=soft_bounce_threshold,
                        soft_bounce_window=soft_bounce_window, suppressions=suppressions)

    async def ses(request: Request) -> JSONResponse:
        if verifier is None:
            return JSONResponse({"status": "not configured"}, status_code=404)
        body = await _body(request)
        if body is None:
            return _refuse("ses", request, "body too large")
        try:
            message = await verifier.verify(body)
            if message["Type"] == "SubscriptionConfirmation":
                await verifier.confirm(message)
                logger.info("feedback (ses): confirmed the subscription to %s",
                            message["TopicArn"])
                return JSONResponse({"status": "subscribed"})
            if message["Type"] != "Notification":
                return JSONResponse({"status": "ignored"})
            notice = json.loads(message["Message"])
            if not isinstance(notice, dict):
                raise Refused("Message is not a JSON object")
        except Refused as exc:
            return _refuse("ses", request, str(exc))
        except ValueError:
            return _refuse("ses", request, "Message is not JSON")
        return JSONResponse(await feedback.apply("ses", message["MessageId"], notice))

    async def resend(request: Request) -> JSONResponse:
        if key is None:
            return JSONResponse({"status": "not configured"}, status_code=404)
        body = await _body(request)
        if body is None:
            return _refuse("resend", request, "body too large")
        try:
            msg_id = webhook.verify(key, request.headers, body, tolerance=resend_tolerance)
            event = json.loads(body)
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise Refused("event is not a JSON object with a type")
        except Refused as exc:
            return _refuse("resend", request, str(exc))
        except ValueError:
            return _refuse("resend", request, "body is not JSON")
        return JSONResponse(await feedback.apply("resend", msg_id, event))

    async def close() -> None:
        if verifier is not None:
            await verifier.close()
        await feedback.close()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await close()

    app = Starlette(routes=[Route("/ses", ses, methods=["POST"]),
                            Route("/resend", resend, methods=["POST"])],
                    lifespan=lifespan)
    app.state.feedback = feedback
    app.state.close = close
    return app
