"""AWS Signature Version 4 for one JSON request (what the SES v2 transport needs).

Why our own ~60 lines rather than botocore's signer: botocore is a large
synchronous dependency (its service data alone is tens of megabytes) that
we would pull in for one function, and SigV4 is a stable, fully documented
algorithm. The test suite checks this signer against botocore's
(``tests/email/test_sigv4.py``) and the SES stand-in server verifies every
request with botocore, so the two cannot drift apart unnoticed.

The signature covers the method, path, query, the headers named in
``SignedHeaders`` (``content-type``, ``host``, ``x-amz-date`` and, with
temporary credentials, ``x-amz-security-token``) and the SHA-256 of the body.
The secret key never leaves :func:`sign`; only the derived signature does.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    """An AWS access key; the secret and the session token stay out of ``repr()``."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """The derived key for one day, region and service."""
    key = _hmac(f"AWS4{secret}".encode(), day)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        pairs.append((quote(name, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(method: str, url: str, headers: dict[str, str],
                      body: bytes) -> tuple[str, str]:
    """The canonical request and the ``SignedHeaders`` value (names lower-cased)."""
    parts = urlsplit(url)
    names = sorted(h.lower() for h in headers)
    lowered = {k.lower(): " ".join(v.strip().split()) for k, v in headers.items()}
    canonical_headers = "".join(f"{n}:{lowered[n]}\n" for n in names)
    signed = ";".join(names)
    path = quote(parts.path or "/", safe="/-_.~")
    text = "\n".join([method.upper(), path, _canonical_query(parts.query), canonical_headers,
                      signed, hashlib.sha256(body).hexdigest()])
    return text, signed


def sign(method: str, url: str, body: bytes, *, credentials: Credentials, region: str,
         service: str, content_type: str = "application/json",
         now: datetime | None = None) -> dict[str, str]:
    """The headers to send with the request: ``Host``, ``Content-Type``,
    ``X-Amz-Date``, ``Authorization`` (and ``X-Amz-Security-Token``)."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {"content-type": content_type, "host": urlsplit(url).netloc,
               "x-amz-date": amz_date}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    request, signed = canonical_request(method, url, headers, body)
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope,
                         hashlib.sha256(request.encode()).hexdigest()])
    key = signing_key(credentials.secret_access_key, day, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    return headers
