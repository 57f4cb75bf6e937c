"""What an SMTP failure means for the job: retry, fail, bounce or throttle.

=================  =========================================  ===================
kind               examples                                   what the worker does
=================  =========================================  ===================
``retry``          connection refused/reset/timeout, 4xx      retry with backoff
``throttle``       421/450/451/452/454 "rate", "throttl",     pause the whole
                   "too many"; Gmail 4.7.28, ``550 5.4.5``    queue, no attempt
                   quota; SES "Daily message quota exceeded"  used
``bounce``         5xx on RCPT for the mailbox: 550 5.1.1,    suppress the
                   5.1.x, 5.2.1, "user unknown"               address, no retry
``fail``           other 5xx (policy 5.7.x, message refused,  fail at once
                   AUTH rejected), TLS certificate errors     (dead-letter queue)
=================  =========================================  ===================
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass

import aiosmtplib

RETRY = "retry"
THROTTLE = "throttle"
BOUNCE = "bounce"
FAIL = "fail"

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_THROTTLE_WORDS = re.compile(
    r"rate.?limit|throttl|too many|try again later.*rate|sending rate|rate of|unusual rate|"
    r"exceeded.*(rate|quota|limit)|(rate|quota|limit).*exceeded|quota", re.IGNORECASE)
_QUOTA_WORDS = re.compile(r"quota|daily|per day|24 ?h", re.IGNORECASE)
_MAILBOX_WORDS = re.compile(
    r"user unknown|unknown user|no such user|mailbox (unavailable|not found|does not exist|"
    r"disabled)|does not exist|recipient (address )?rejected|invalid (mailbox|recipient)|"
    r"address rejected|no mailbox|account (has been )?disabled|not our customer",
    re.IGNORECASE)
_POLICY_WORDS = re.compile(r"spam|policy|blocked|blacklist|blocklist|reputation|dmarc|spf|"
                           r"dkim|authentica", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """The classification of one failure: ``kind``, the SMTP or HTTP ``code``
    (0 if none), a short ``reason`` for job records, and for throttling whether
    it is a daily ``quota`` (pause longer) and how long the provider asked us
    to wait (``retry_after`` seconds, HTTP providers only)."""

    kind: str
    code: int
    reason: str
    quota: bool = False
    retry_after: float | None = None


def enhanced_code(text: str) -> str | None:
    """``5.1.1`` from a reply text, if it carries an enhanced status code."""
    match = _ENHANCED.search(text)
    return match.group(0) if match else None


def classify_reply(code: int, message: str, *, stage: str = "data") -> Verdict:
    """Classify an SMTP reply ``code`` + ``message`` seen at ``stage``
    (``connect``, ``auth``, ``mail``, ``rcpt`` or ``data``)."""
    text = " ".join(message.split())
    reason = f"{code} {text}".strip()
    enhanced = enhanced_code(text) or ""
    throttled = 400 <= code < 600 and bool(
        _THROTTLE_WORDS.search(text) or enhanced in ("4.7.28", "5.4.5")
        or (code == 421 and enhanced == "4.7.0" and "try again" in text.lower()))
    # Policy rejections that merely mention "limit" stay failures.
    policy = code >= 500 and bool(_POLICY_WORDS.search(text)) \
        and not _QUOTA_WORDS.search(text)
    if throttled and not policy:
        quota = bool(_QUOTA_WORDS.search(text)) or enhanced == "5.4.5"
        return Verdict(THROTTLE, code, reason, quota=quota)
    if 400 <= code < 500 or code < 200:
        return Verdict(RETRY, code, reason)
    if code >= 500:
        if stage == "rcpt":
            mailbox = enhanced.startswith("5.1.") or enhanced == "5.2.1" \
                or bool(_MAILBOX_WORDS.search(text))
            if not enhanced and code in (550, 551, 553) and not _POLICY_WORDS.search(text):
                mailbox = True
            if mailbox:
                return Verdict(BOUNCE, code, reason)
        return Verdict(FAIL, code, reason)
    return Verdict(RETRY, code, reason)


def classify_exception(exc: BaseException, *, stage: str | None = None) -> Verdict:
    """Classify an exception raised while connecting or sending."""
    carried = getattr(exc, "verdict", None)  # transport.ProviderError and the send errors
    if isinstance(carried, Verdict):
        return carried
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        verdicts = [classify_reply(r.code, r.message, stage="rcpt") for r in exc.recipients]
        for kind in (THROTTLE, RETRY, FAIL, BOUNCE):  # the most hopeful kind wins
            for verdict in verdicts:
                if verdict.kind == kind:
                    return verdict
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return classify_reply(exc.code, exc.message, stage="rcpt")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        verdict = classify_reply(exc.code, exc.message, stage="auth")
        return verdict if verdict.kind != BOUNCE else Verdict(FAIL, exc.code, verdict.reason)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return classify_reply(exc.code, exc.message, stage="mail")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_reply(exc.code, exc.message, stage=stage or "data")
    if isinstance(exc, ssl.SSLCertVerificationError) or (
            isinstance(exc, aiosmtplib.SMTPException) and "CERTIFICATE_VERIFY_FAILED" in str(exc)):
        return Verdict(FAIL, 0, f"TLS certificate verification failed: {exc}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return Verdict(FAIL, 0, f"server does not support a required extension: {exc}")
    if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError,
                        aiosmtplib.SMTPTimeoutError, ConnectionError, TimeoutError, OSError)):
        return Verdict(RETRY, 0, f"connection problem: {type(exc).__name__}: {exc}")
    return Verdict(RETRY, 0, f"{type(exc).__name__}: {exc}")
