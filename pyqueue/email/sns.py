"""Checking Amazon SNS messages (how SES delivers bounce and complaint notices).

AWS's documented procedure, in the order :meth:`SNSVerifier.verify` runs it;
any failure raises :class:`Refused` and nothing else happens:

1. the body is a JSON object with the fields its ``Type`` needs
   (``Notification``, ``SubscriptionConfirmation``,
   ``UnsubscribeConfirmation``) and ``SignatureVersion`` 1 (SHA1) or 2
   (SHA256);
2. ``TopicArn`` is one of the topics this endpoint was configured with
   (anyone can create a topic and subscribe your URL: a valid signature alone
   proves only that *some* topic sent it);
3. ``Timestamp`` is within ``max_age`` (a replayed old message is refused;
   SNS retries a delivery for minutes, not hours);
4. ``SigningCertURL`` is ``https``, on an SNS host
   (``sns.<region>.amazonaws.com``), a ``.pem`` path; only then is it
   fetched (once per URL, cached), and the certificate must be valid now;
5. the signature over the canonical string of the message's fields
   verifies with the certificate's RSA key.

A ``SubscriptionConfirmation`` is confirmed by fetching its ``SubscribeURL``,
which must pass the same host check.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

try:
    import httpx
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the email feedback endpoint needs httpx, starlette and cryptography: "
                      "pip install 'pyqueue-redis[feedback]'") from exc

#: Hosts SNS signs from and sends confirmation links on.
SNS_HOST = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"

_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
_OPTIONAL = {"Subject"}


class Refused(Exception):
    """A notification that is forged, replayed or malformed. The message is
    safe to log: it names the problem, never a secret or the body."""


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical text SNS signs: ``name\\nvalue\\n`` for each field of the type."""
    parts = []
    for name in _FIELDS[str(message["Type"])]:
        if name in _OPTIONAL and message.get(name) is None:
            continue
        parts.append(f"{name}\n{message[name]}\n")
    return "".join(parts).encode("utf-8")


def parse_timestamp(value: str) -> datetime:
    """An SNS ``Timestamp`` (ISO 8601, UTC)."""
    text = value.replace("Z", "+00:00")
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return when


class SNSVerifier:
    """Verifies SNS messages for a fixed set of topics (see the module docstring).

    ``topic_arns``: the topics accepted. ``max_age``: seconds a message stays
    acceptable. ``host_pattern``: the regular expression a certificate or
    confirmation URL's host must match (SNS's hosts; tests point it at their
    own server). ``verify``: passed to httpx (a CA bundle path or an
    ``SSLContext``) for those fetches.
    """

    def __init__(self, topic_arns: Sequence[str], *, max_age: float = 3600.0,
                 host_pattern: str = SNS_HOST, verify: Any = True,
                 timeout: float = 10.0) -> None:
        if not topic_arns:
            raise ValueError("SNSVerifier needs at least one accepted topic ARN")
        self.topic_arns = frozenset(topic_arns)
        self.max_age = max_age
        self.host = re.compile(host_pattern)
        self.tls_verify = verify
        self.timeout = timeout
        self._certs: dict[str, x509.Certificate] = {}
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, verify=self.tls_verify,
                                             follow_redirects=False)
        return self._client

    def check_url(self, url: object, what: str, *, pem: bool = False) -> str:
        """``url`` if it is https on an SNS host (and a ``.pem`` path), else ``Refused``."""
        if not isinstance(url, str):
            raise Refused(f"{what} is missing")
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.username or parts.password \
                or not self.host.match(parts.hostname or ""):
            raise Refused(f"{what} is not an https URL on an SNS host")
        if pem and not parts.path.endswith(".pem"):
            raise Refused(f"{what} does not name a .pem certificate")
        return url

    def parse(self, body: bytes) -> dict[str, Any]:
        """The message's fields, checked for shape (step 1)."""
        try:
            message = json.loads(body)
        except ValueError:
            raise Refused("body is not JSON") from None
        if not isinstance(message, dict):
            raise Refused("body is not a JSON object")
        kind = message.get("Type")
        if kind not in _FIELDS:
            raise Refused(f"unknown message type {str(kind)[:40]!r}")
        for name in _FIELDS[kind]:
            if name not in _OPTIONAL and not isinstance(message.get(name), str):
                raise Refused(f"field {name} is missing")
        if message.get("SignatureVersion") not in ("1", "2"):
            raise Refused("unsupported SignatureVersion")
        if not isinstance(message.get("Signature"), str):
            raise Refused("field Signature is missing")
        return message

    async def certificate(self, url: str) -> x509.Certificate:
        """The signing certificate at ``url`` (host already checked), cached."""
        cert = self._certs.get(url)
        if cert is None:
            try:
                response = await self._http().get(url)
            except httpx.HTTPError as exc:
                raise Refused(f"cannot fetch the signing certificate: "
                              f"{type(exc).__name__}") from None
            if response.status_code != 200:
                raise Refused(f"signing certificate fetch answered {response.status_code}")
            try:
                cert = x509.load_pem_x509_certificate(response.content)
            except ValueError:
                raise Refused("signing certificate is not PEM") from None
            self._certs[url] = cert
        return cert

    async def verify(self, body: bytes, *, now: datetime | None = None) -> dict[str, Any]:
        """The message, if it passes every check; else ``Refused``."""
        message = self.parse(body)
        if message["TopicArn"] not in self.topic_arns:
            raise Refused("topic is not one this endpoint accepts")
        now = now or datetime.now(timezone.utc)
        try:
            sent = parse_timestamp(message["Timestamp"])
        except ValueError:
            raise Refused("Timestamp is not ISO 8601") from None
        if sent < now - timedelta(seconds=self.max_age):
            raise Refused("message is too old (replayed?)")
        if sent > now + timedelta(minutes=5):
            raise Refused("message is dated in the future")
        url = self.check_url(message.get("SigningCertURL"), "SigningCertURL", pem=True)
        cert = await self.certificate(url)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise Refused("signing certificate is not valid now")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused("signing certificate has no RSA key")
        try:
            signature = base64.b64decode(message["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise Refused("Signature is not base64") from None
        algorithm = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            raise Refused("signature does not verify") from None
        return message

    async def confirm(self, message: Mapping[str, Any]) -> None:
        """Confirm a subscription: GET its ``SubscribeURL`` (host-checked)."""
        url = self.check_url(message.get("SubscribeURL"), "SubscribeURL")
        try:
            response = await self._http().get(url)
        except httpx.HTTPError as exc:
            raise Refused(f"confirming the subscription failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise Refused(f"confirming the subscription answered {response.status_code}")

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
