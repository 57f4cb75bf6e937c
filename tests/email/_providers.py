"""Stand-ins for Amazon SES v2 and Resend: real HTTP servers on loopback that
implement the documented request and response shapes and error codes.

``SESServer`` answers ``POST /v2/email/outbound-emails``: it checks the SigV4
signature with botocore's signer (an implementation independent of
pyqueue's), the credential scope and the clock skew, and the JSON body; it
replies ``{"MessageId": ...}`` or an error with ``x-amzn-ErrorType``.
``ResendServer`` answers ``POST /emails``: bearer key, required fields,
addresses, ``Idempotency-Key`` (same key and body: the first answer again;
same key, other body: 409 ``invalid_idempotent_request``); it replies
``{"id": ...}`` or ``{"statusCode", "name", "message"}``.

Both take scripted failures: ``server.fail(status, name, message, times=1,
headers=None, delay=0)`` answers the next ``times`` requests with that error
(``delay``: wait before answering, for client timeouts).
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"
RESEND_KEY = "re_test_0123456789"


@dataclass
class Rule:
    status: int
    name: str
    message: str
    times: int | None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ProviderServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        status, headers, payload = self.server.owner.handle(
            self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class ProviderServer:
    """The shared part: a threaded HTTP server, scripted failures, a request log."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.requests = 0
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ProviderServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def fail(self, status: int, name: str, message: str, *, times: int | None = 1,
             headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        with self.lock:
            self.rules.append(Rule(status, name, message, times, headers or {}, delay))

    def _next_rule(self) -> Rule | None:
        with self.lock:
            self.requests += 1
            if not self.rules:
                return None
            rule = self.rules[0]
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self.rules.pop(0)
            return rule

    def handle(self, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError


class SESServer(ProviderServer):
    """Amazon SES v2 ``SendEmail`` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.signatures_checked = 0
        #: The benchmark turns the (botocore, CPU-heavy) check off to time pyqueue alone.
        self.check_signatures = True

    def error(self, status: int, name: str, message: str,
              extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        headers = {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/"}
        headers.update(extra or {})
        return status, headers, {"message": message}

    def check_signature(self, path: str, headers: dict[str, str], body: bytes) -> str | None:
        """``None`` when the request is signed right, else what is wrong."""
        auth = headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "missing or unknown authorization"
        fields = dict(part.strip().split("=", 1) for part in auth[17:].split(","))
        key_id, day, region, service, term = fields["Credential"].split("/")
        if key_id != ACCESS_KEY:
            return "The security token included in the request is invalid."
        amz_date = headers.get("x-amz-date", "")
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if abs((datetime.now(timezone.utc) - when).total_seconds()) > 300:
            return "Signature expired"
        if (day, region, service, term) != (amz_date[:8], REGION, "ses", "aws4_request"):
            return "Credential should be scoped to a valid region, service, date"
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return "host and x-amz-date must be signed"
        request = AWSRequest(method="POST", url=f"http://{headers['host']}{path}", data=body,
                             headers={name: headers[name] for name in signed})
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(BotoCredentials(ACCESS_KEY, SECRET_KEY,
                                           headers.get("x-amz-security-token")), "ses", REGION)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        self.signatures_checked += 1
        if expected != fields["Signature"]:
            return "The request signature we calculated does not match the signature you provided."
        return None

    def handle(self, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], Any]:
        if path != "/v2/email/outbound-emails":
            return self.error(404, "NotFoundException", f"no route {path}")
        problem = self.check_signature(path, headers, body) if self.check_signatures else None
        if problem is not None:
            return self.error(403, "SignatureDoesNotMatch", problem)
        rule = self._next_rule()
        if rule is not None:
            if rule.delay:
                time.sleep(rule.delay)
            return self.error(rule.status, rule.name, rule.message, rule.headers)
        try:
            request = json.loads(body)
            raw = base64.b64decode(request["Content"]["Raw"]["Data"], validate=True)
            sender = request["FromEmailAddress"]
            to = request["Destination"]["ToAddresses"]
        except (ValueError, KeyError, TypeError):
            return self.error(400, "BadRequestException", "Malformed request body")
        for address in [sender, *to]:
            if address.count("@") != 1 or address.endswith("@"):
                return self.error(400, "BadRequestException", f"Illegal address: {address}")
        if len(to) > 50:
            return self.error(400, "BadRequestException", "Recipient count exceeds 50.")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        message_id = f"0100{uuid.uuid4().hex}-000000"
        with self.lock:
            self.messages.append({"from": sender, "to": to, "message": message,
                                  "id": message_id,
                                  "configuration_set": request.get("ConfigurationSetName")})
        return 200, {"x-amzn-RequestId": str(uuid.uuid4())}, {"MessageId": message_id}


class ResendServer(ProviderServer):
    """Resend ``POST /emails`` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.idempotency: dict[str, tuple[str, str]] = {}

    @staticmethod
    def error(status: int, name: str, message: str,
              extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        return status, dict(extra or {}), {"statusCode": status, "name": name,
                                           "message": message}

    def handle(self, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], Any]:
        if path != "/emails":
            return self.error(404, "not_found", "The requested endpoint does not exist.")
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return self.error(401, "missing_api_key", "Missing API key in the authorization "
                                                      "header.")
        if auth[7:] != RESEND_KEY:
            return self.error(403, "invalid_api_key", "API key is invalid")
        rule = self._next_rule()
        if rule is not None:
            if rule.delay:
                time.sleep(rule.delay)
            return self.error(rule.status, rule.name, rule.message, rule.headers)
        try:
            request = json.loads(body)
        except ValueError:
            return self.error(400, "invalid_request", "body is not JSON")
        for name in ("from", "to", "subject"):
            if not request.get(name):
                return self.error(422, "missing_required_field",
                                  f"The `{name}` field is missing.")
        recipients = [*request["to"], *request.get("cc", []), *request.get("bcc", [])]
        for address in recipients:
            if not isinstance(address, str) or address.count("@") != 1:
                return self.error(422, "validation_error",
                                  f"Invalid `to` field. The email address needs to follow "
                                  f"the `email@example.com` format: {address}")
        key = headers.get("idempotency-key")
        digest = hashlib.sha256(body).hexdigest()
        with self.lock:
            if key is not None and key in self.idempotency:
                seen_digest, seen_id = self.idempotency[key]
                if seen_digest != digest:
                    return self.error(409, "invalid_idempotent_request",
                                      "Same idempotency key used with a different request "
                                      "payload.")
                return 200, {}, {"id": seen_id}
            message_id = str(uuid.uuid4())
            if key is not None:
                self.idempotency[key] = (digest, message_id)
            self.messages.append({"request": request, "id": message_id,
                                  "idempotency_key": key})
        return 200, {}, {"id": message_id}


def as_message(entry: dict[str, Any]) -> EmailMessage:
    message: EmailMessage = entry["message"]
    return message
