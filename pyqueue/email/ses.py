"""The Amazon SES v2 transport: ``SendEmail`` over HTTPS, signed with SigV4.

``POST /v2/email/outbound-emails`` with the whole MIME message as
``Content.Raw.Data`` (so attachments, the text and HTML parts and the
Message-ID made from ``mail_uid`` go out exactly as the SMTP transport would
send them) and every envelope recipient, Bcc included, in ``Destination``.
SES has no idempotency key: the stable Message-ID is what lets a receiver
(and you) spot a resend after a crash.

Settings from the environment (:meth:`SESSettings.from_env`): the usual AWS
variables ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``), an
endpoint override ``AWS_ENDPOINT_URL_SESV2`` (else ``AWS_ENDPOINT_URL``),
``SES_CONFIGURATION_SET`` and ``SES_FROM`` (else ``EMAIL_FROM``), the
default sender. ``SES_TIMEOUT`` (seconds, 30).

Error mapping (SES's ``x-amzn-ErrorType``): ``TooManyRequestsException``
(429) throttles the queue; ``LimitExceededException`` (the sending quota),
``SendingPausedException`` and ``AccountSuspendedException`` pause it for the
quota pause (nothing could be sent anyway); other 4xx
(``MessageRejected``, ``BadRequestException``,
``MailFromDomainNotVerifiedException``, a bad signature) fail the job;
5xx and timeouts retry.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from ..errors import ConfigurationError
from ._http import HTTPTransport, check_url, json_body, with_env_timeout
from .sender import SendResult
from .sigv4 import Credentials, sign
from .transport import ProviderError, retry_after_seconds, verdict_for_status

PATH = "/v2/email/outbound-emails"
SERVICE = "ses"
_THROTTLE = frozenset({"TooManyRequestsException", "ThrottlingException", "Throttling"})
_QUOTA = frozenset({"LimitExceededException", "SendingPausedException",
                    "AccountSuspendedException"})


@dataclass(frozen=True)
class SESSettings:
    """How to reach SES. ``endpoint`` defaults to ``https://email.<region>.amazonaws.com``."""

    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    configuration_set: str | None = None
    from_address: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.region or not self.access_key_id or not self.secret_access_key:
            raise ConfigurationError("SES needs a region, an access key id and a secret key "
                                     "(AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
        if self.endpoint is not None:
            object.__setattr__(self, "endpoint", check_url("SES endpoint", self.endpoint))

    @property
    def url(self) -> str:
        """The SendEmail URL."""
        base = self.endpoint or f"https://email.{self.region}.amazonaws.com"
        return base + PATH

    def describe(self) -> str:
        """A one-line summary for logs (no secrets)."""
        return f"ses {self.region} via {self.url} as {self.access_key_id[:4]}..."

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 **overrides: Any) -> SESSettings:
        """Settings from the AWS and ``SES_*`` variables; ``overrides`` win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "",
            "access_key_id": env.get("AWS_ACCESS_KEY_ID") or "",
            "secret_access_key": env.get("AWS_SECRET_ACCESS_KEY") or "",
            "session_token": env.get("AWS_SESSION_TOKEN") or None,
            "endpoint": env.get("AWS_ENDPOINT_URL_SESV2") or env.get("AWS_ENDPOINT_URL")
            or None,
            "configuration_set": env.get("SES_CONFIGURATION_SET") or None,
            "from_address": env.get("SES_FROM") or env.get("EMAIL_FROM") or None,
        }
        return cls(**with_env_timeout(values, env, "SES_TIMEOUT", overrides))


class SESTransport(HTTPTransport):
    """Sends through Amazon SES v2 ``SendEmail`` (see the module docstring)."""

    name = "ses"
    settings: SESSettings

    def __init__(self, settings: SESSettings, *, max_connections: int = 20,
                 verify: Any = True) -> None:
        super().__init__(settings, max_connections=max_connections, verify=verify)
        self.credentials = Credentials(settings.access_key_id, settings.secret_access_key,
                                       settings.session_token)

    def request_body(self, message: EmailMessage, sender: str,
                     recipients: list[str]) -> bytes:
        """The SendEmail JSON for one message."""
        raw = message.as_bytes(policy=SMTP)
        body: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": recipients},
            "Content": {"Raw": {"Data": base64.b64encode(raw).decode("ascii")}},
        }
        if self.settings.configuration_set:
            body["ConfigurationSetName"] = self.settings.configuration_set
        return json.dumps(body).encode()

    async def send(self, message: EmailMessage, sender: str, recipients: list[str], *,
                   mail_uid: str | None = None) -> SendResult:
        """Send one message; raises ``ProviderError`` (see the module docstring)."""
        body = self.request_body(message, sender, recipients)
        url = self.settings.url
        headers = sign("POST", url, body, credentials=self.credentials,
                       region=self.settings.region, service=SERVICE)
        response = await self.http.post(url, content=body, headers=headers)
        data = json_body(response)
        if response.status_code == 200 and isinstance(data.get("MessageId"), str):
            return SendResult(list(recipients), response=f"ses {data['MessageId']}",
                              provider_id=data["MessageId"])
        name = (response.headers.get("x-amzn-errortype") or str(data.get("__type") or "")
                or "UnknownError").split(":")[0]
        text = str(data.get("message") or data.get("Message") or response.reason_phrase)
        raise ProviderError(verdict_for_status(
            response.status_code if response.status_code != 200 else 502, name, text,
            retry_after=retry_after_seconds(response.headers),
            throttle_names=_THROTTLE, quota_names=_QUOTA))
