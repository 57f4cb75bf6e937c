"""SMTP settings: from ``SMTP_*`` environment variables or from arguments.

``SMTPSettings.from_env()`` reads ``SMTP_HOST``, ``SMTP_PORT``,
``SMTP_USERNAME``, ``SMTP_PASSWORD``, ``SMTP_FROM``, ``SMTP_STARTTLS``,
``SMTP_TLS`` (booleans: ``true``/``false``/``1``/``0``), ``SMTP_TIMEOUT``
(seconds) and ``SMTP_CA_FILE`` (a PEM bundle to trust instead of the system
store). Keyword arguments override the environment.

STARTTLS with certificate verification is the default. ``SMTP_TLS=true``
means implicit TLS (port 465). With both false the worker speaks plain SMTP,
meant for a local server, and never sends AUTH. The password is kept out of
``repr()``, logs and job records.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigurationError

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def parse_bool(name: str, value: str) -> bool:
    """``true``/``false``/``1``/``0`` (any case, surrounding blanks ignored)."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true, false, 1 or 0, got {value!r}")


@dataclass(frozen=True)
class SMTPSettings:
    """How to reach the SMTP server. Build with ``from_env(**overrides)`` or directly."""

    host: str = "localhost"
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    from_address: str | None = None
    starttls: bool = True
    tls: bool = False
    timeout: float = 30.0
    ca_file: str | None = None
    validate_certs: bool = True
    #: Messages sent over one connection before it is replaced.
    max_messages_per_connection: int = 100
    #: A connection idle longer than this is closed rather than reused.
    idle_timeout: float = 30.0
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.tls and self.starttls:
            # Implicit TLS wins; STARTTLS inside TLS is meaningless.
            object.__setattr__(self, "starttls", False)
        if self.port is not None and not (0 < int(self.port) < 65536):
            raise ConfigurationError(f"SMTP port must be 1..65535, got {self.port!r}")
        if self.timeout <= 0:
            raise ConfigurationError(f"SMTP timeout must be > 0, got {self.timeout!r}")

    @property
    def secure(self) -> bool:
        """Whether the connection is encrypted (implicit TLS or STARTTLS)."""
        return self.tls or self.starttls

    @property
    def effective_port(self) -> int:
        """The port to connect to: the given one, else 465 (TLS), 587 (STARTTLS), 25."""
        if self.port is not None:
            return int(self.port)
        return 465 if self.tls else 587 if self.starttls else 25

    @property
    def sends_auth(self) -> bool:
        """AUTH is sent only with credentials and only over TLS."""
        return bool(self.username) and self.password is not None and self.secure

    @property
    def mode(self) -> str:
        """``tls``, ``starttls`` or ``plain``."""
        return "tls" if self.tls else "starttls" if self.starttls else "plain"

    def with_overrides(self, **overrides: Any) -> SMTPSettings:
        """A copy with the given fields replaced."""
        return replace(self, **overrides)

    def describe(self) -> str:
        """A one-line summary for logs: never includes the password."""
        user = f" as {self.username!r}" if self.username else ""
        auth = "" if not self.username else (" with AUTH" if self.sends_auth
                                             else " (AUTH skipped: plain SMTP)")
        return f"smtp {self.mode} {self.host}:{self.effective_port}{user}{auth}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 **overrides: Any) -> SMTPSettings:
        """Settings from ``SMTP_*`` variables (``environ`` defaults to ``os.environ``),
        with keyword ``overrides`` taking precedence."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("SMTP_HOST"):
            values["host"] = env["SMTP_HOST"]
        if env.get("SMTP_PORT"):
            try:
                values["port"] = int(env["SMTP_PORT"])
            except ValueError:
                raise ConfigurationError(
                    f"SMTP_PORT must be an integer, got {env['SMTP_PORT']!r}") from None
        if env.get("SMTP_USERNAME"):
            values["username"] = env["SMTP_USERNAME"]
        if "SMTP_PASSWORD" in env:
            values["password"] = env["SMTP_PASSWORD"]
        if env.get("SMTP_FROM"):
            values["from_address"] = env["SMTP_FROM"]
        tls = parse_bool("SMTP_TLS", env["SMTP_TLS"]) if env.get("SMTP_TLS") else None
        starttls = (parse_bool("SMTP_STARTTLS", env["SMTP_STARTTLS"])
                    if env.get("SMTP_STARTTLS") else None)
        if tls is not None:
            values["tls"] = tls
        if starttls is not None:
            values["starttls"] = starttls
        elif tls:
            values["starttls"] = False
        if env.get("SMTP_TIMEOUT"):
            try:
                values["timeout"] = float(env["SMTP_TIMEOUT"])
            except ValueError:
                raise ConfigurationError(
                    f"SMTP_TIMEOUT must be a number, got {env['SMTP_TIMEOUT']!r}") from None
        if env.get("SMTP_CA_FILE"):
            values["ca_file"] = env["SMTP_CA_FILE"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        if overrides.get("tls") and "starttls" not in overrides:
            values["starttls"] = False
        return cls(**values)
