"""A real SMTP server on loopback for the email tests (not a test module).

``SMTPServer`` runs aiosmtpd's ``Controller`` in a thread on a free port of
127.0.0.1, in one of three modes (``plain``, ``starttls``, ``tls``), with
optional AUTH. Its ``Recorder`` handler keeps every accepted message and
replies with 4xx/5xx/throttling on demand::

    server.handler.fail_rcpt("gone@example.com", "550 5.1.1 user unknown")
    server.handler.fail_data("451 4.3.0 try later", times=2)
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SENDER = "App <noreply@app.example.com>"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 (``cryptography`` is not
    installed here; the ``openssl`` command line is)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float
    peer: Any = None

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


@dataclass
class _Rule:
    reply: str
    times: int | None
    match: Callable[[Any], bool] | None = None


@dataclass
class Recorder:
    """aiosmtpd handler: records messages; scripted failures on demand."""

    messages: list[Received] = field(default_factory=list)
    rcpt_rules: dict[str, _Rule] = field(default_factory=dict)
    data_rules: list[_Rule] = field(default_factory=list)
    ehlo_count: int = 0
    auth_attempts: list[tuple[str, str]] = field(default_factory=list)
    on_data: Callable[[Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_rcpt(self, address: str, reply: str, times: int | None = None) -> None:
        self.rcpt_rules[address.lower()] = _Rule(reply, times)

    def fail_data(self, reply: str, times: int | None = 1,
                  match: Callable[[Any], bool] | None = None) -> None:
        self.data_rules.append(_Rule(reply, times, match))

    def clear_rules(self) -> None:
        self.rcpt_rules.clear()
        self.data_rules.clear()

    @staticmethod
    def _use(rule: _Rule) -> bool:
        if rule.times is None:
            return True
        if rule.times <= 0:
            return False
        rule.times -= 1
        return True

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.ehlo_count += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        rule = self.rcpt_rules.get(address.lower())
        if rule is not None and self._use(rule):
            return rule.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rule in self.data_rules:
            if (rule.match is None or rule.match(envelope)) and self._use(rule):
                return rule.reply
        received = Received(envelope.mail_from, list(envelope.rcpt_tos),
                            bytes(envelope.original_content or envelope.content), time.time(),
                            session.peer)
        with self.lock:
            self.messages.append(received)
        if self.on_data is not None:
            self.on_data(received)
        return "250 2.0.0 Message accepted for delivery"

    def by_rcpt(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


class SMTPServer:
    """aiosmtpd on 127.0.0.1: ``mode`` plain|starttls|tls, optional AUTH users."""

    def __init__(self, mode: str = "plain", *, cert: tuple[Path, Path] | None = None,
                 users: dict[str, str] | None = None, advertise_auth_in_plain: bool = False
                 ) -> None:
        self.mode = mode
        self.handler = Recorder()
        self.port = free_port()
        self.users = users
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port,
                                  "ready_timeout": 10}
        context = None
        if mode in ("starttls", "tls"):
            assert cert is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        if mode == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif mode == "tls":
            kwargs.update(ssl_context=context)
        if users is not None:
            # aiosmtpd does not count implicit TLS as TLS for AUTH: allow it there.
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=not advertise_auth_in_plain and mode != "tls")
        elif advertise_auth_in_plain:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self.controller = Controller(self.handler, **kwargs)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.handler.auth_attempts.append((login, password))
        ok = self.users is not None and self.users.get(login) == password
        return AuthResult(success=ok)

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
