"""A test-made PKI for the SNS feedback tests: a CA, an SNS-like signing
certificate issued by it, a TLS certificate for ``localhost``, and an HTTPS
server on loopback that serves the signing certificate and answers
subscription confirmations (standing in for ``sns.<region>.amazonaws.com``)."""

from __future__ import annotations

import base64
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERT_PATH = "/SimpleNotificationService-0123456789abcdef.pem"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey,
          *, ca: bool = False, san: list[x509.GeneralName] | None = None,
          valid_days: int = 30) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=1))
               .not_valid_after(now + timedelta(days=valid_days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class PKI:
    ca_file: Path
    signing_key: rsa.RSAPrivateKey
    signing_cert: x509.Certificate
    tls_cert_file: Path
    tls_key_file: Path
    other_key: rsa.RSAPrivateKey  # a key the certificate does not belong to (forgeries)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_pki(directory: Path) -> PKI:
    ca_key, sign_key, tls_key = _key(), _key(), _key()
    ca = _cert("pyqueue test CA", ca_key, "pyqueue test CA", ca_key, ca=True)
    signing = _cert("sns.amazonaws.com", sign_key, "pyqueue test CA", ca_key)
    tls = _cert("localhost", tls_key, "pyqueue test CA", ca_key,
                san=[x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))])
    (directory / "ca.pem").write_bytes(pem(ca))
    (directory / "tls.pem").write_bytes(pem(tls))
    (directory / "tls.key").write_bytes(tls_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return PKI(directory / "ca.pem", sign_key, signing, directory / "tls.pem",
               directory / "tls.key", _key())


# SNS's canonical string, written here from AWS's documentation (independently
# of pyqueue.email.sns, which the tests check).
_SIGNED = {"Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
           "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp",
                                        "Token", "TopicArn", "Type"]}


def sign_sns(message: dict[str, Any], key: rsa.RSAPrivateKey, version: str = "1") -> None:
    text = "".join(f"{name}\n{message[name]}\n" for name in _SIGNED[message["Type"]]
                   if name in message)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    message["SignatureVersion"] = version
    message["Signature"] = base64.b64encode(
        key.sign(text.encode(), padding.PKCS1v15(), algorithm)).decode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: CertServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        if parts.path == CERT_PATH:
            owner.cert_fetches += 1
            body = pem(owner.pki.signing_cert)
        elif parts.path == "/confirm":
            owner.confirmed.extend(parse_qs(parts.query).get("Token", []))
            body = b"<ConfirmSubscriptionResponse/>"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CertServer:
    """HTTPS on 127.0.0.1 with the test CA's ``localhost`` certificate."""

    def __init__(self, pki: PKI) -> None:
        self.pki = pki
        self.cert_fetches = 0
        self.confirmed: list[str] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pki.tls_cert_file), str(pki.tls_key_file))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"https://localhost:{self._server.server_address[1]}"

    @property
    def cert_url(self) -> str:
        return self.base + CERT_PATH

    def start(self) -> CertServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
