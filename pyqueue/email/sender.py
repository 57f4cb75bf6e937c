"""SMTP connections: reused across jobs, TLS by default, AUTH only over TLS.

``SMTPSender`` keeps up to ``size`` open connections (one per concurrent
job). A connection is reused for the next message unless it has sent
``max_messages_per_connection`` messages or sat idle longer than
``idle_timeout``; one idle for more than a second is checked with ``NOOP``
first, so a connection the server dropped is replaced instead of failing a
job. Any error closes the connection it happened on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib

from .settings import SMTPSettings

logger = logging.getLogger("pyqueue.email")

#: A connection idle longer than this is checked with NOOP before reuse.
NOOP_AFTER = 1.0


class InsecureAuthError(aiosmtplib.SMTPException):
    """Credentials are configured but the connection is not encrypted."""


@dataclass
class SendResult:
    """What the server said: accepted and refused recipients, the final reply,
    and the provider's own message id (HTTP transports)."""

    accepted: list[str]
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    response: str = ""
    provider_id: str | None = None


@dataclass
class _Conn:
    smtp: aiosmtplib.SMTP
    created: float
    last_used: float
    sent: int = 0


class SMTPSender:
    """A small pool of SMTP connections for one worker (the ``smtp`` transport)."""

    name = "smtp"

    def __init__(self, settings: SMTPSettings, *, size: int = 1,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.tls_context = tls_context
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max(size, 1))
        self._warned_plain_auth = False
        self.connections_opened = 0

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host, port=s.effective_port, use_tls=s.tls,
            start_tls=s.starttls,  # False in plain mode: never upgrade, never AUTH
            validate_certs=s.validate_certs, cert_bundle=s.ca_file,
            tls_context=self.tls_context, timeout=s.timeout, local_hostname=s.local_hostname)

    async def _connect(self) -> _Conn:
        s = self.settings
        smtp = self._new_client()
        await smtp.connect()
        try:
            encrypted = smtp.get_transport_info("sslcontext") is not None
            if s.username and s.password is not None:
                if s.secure and not encrypted:  # pragma: no cover - aiosmtplib enforces TLS
                    raise InsecureAuthError("refusing to send AUTH over an unencrypted link")
                if encrypted:
                    await smtp.login(s.username, s.password)
                elif not self._warned_plain_auth:
                    self._warned_plain_auth = True
                    logger.warning("SMTP_USERNAME is set but TLS and STARTTLS are off: "
                                   "AUTH is never sent over plain SMTP")
        except BaseException:
            smtp.close()
            raise
        self.connections_opened += 1
        now = time.monotonic()
        return _Conn(smtp, now, now)

    async def _acquire(self) -> _Conn:
        s = self.settings
        while self._idle:
            conn = self._idle.pop()
            idle = time.monotonic() - conn.last_used
            if not conn.smtp.is_connected or idle > s.idle_timeout \
                    or conn.sent >= s.max_messages_per_connection:
                await self._discard(conn, polite=conn.smtp.is_connected)
                continue
            if idle > NOOP_AFTER:
                try:
                    await conn.smtp.noop()
                except (aiosmtplib.SMTPException, OSError):
                    await self._discard(conn, polite=False)
                    continue
            return conn
        return await self._connect()

    async def _discard(self, conn: _Conn, *, polite: bool) -> None:
        if polite:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(conn.smtp.quit(), timeout=2)
        conn.smtp.close()

    @property
    def default_from(self) -> str | None:
        """The sender used when a mail names none (``SMTP_FROM``)."""
        return self.settings.from_address

    def describe(self) -> str:
        """A one-line summary for logs (never the password)."""
        return self.settings.describe()

    async def send(self, message: EmailMessage, sender: str,
                   recipients: list[str], *, mail_uid: str | None = None) -> SendResult:
        """Send one message; raises aiosmtplib's errors (see ``classify``).
        SMTP's idempotency is the Message-ID already in ``message``."""
        async with self._slots:
            conn = await self._acquire()
            try:
                refused, response = await conn.smtp.send_message(
                    message, sender=sender, recipients=recipients)
            except BaseException:
                await self._discard(conn, polite=False)
                raise
            conn.sent += 1
            conn.last_used = time.monotonic()
            self._idle.append(conn)
        bad = {addr: (r.code, r.message) for addr, r in refused.items()}
        accepted = [r for r in recipients if r not in bad]
        return SendResult(accepted, bad, response)

    async def close(self) -> None:
        """QUIT and close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._discard(conn, polite=conn.smtp.is_connected)
