"""A private CA and a server certificate made with the ``openssl`` CLI (not a test module).

``make_certs(directory)`` writes ``ca.crt`` (a self-signed CA) and
``server.crt`` / ``server.key`` signed by it for the names given (by default
only ``DNS:localhost``, so connecting to ``127.0.0.1`` is a host name
mismatch). EC keys keep it fast; the extensions are the ones a strict X.509
verifier (Python >= 3.13's ``VERIFY_X509_STRICT``) wants.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class CertError(RuntimeError):
    """openssl is missing or failed."""


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise CertError("no openssl binary on PATH")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30, check=False)
    if done.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")


def make_certs(directory: Path, san: str = "DNS:localhost", cn: str = "localhost") -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=pyqueue test CA",
             "-keyout", "ca.key", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=directory)
    (directory / "server.ext").write_text(
        f"subjectAltName={san}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl("req", *ec, "-subj", f"/CN={cn}", "-keyout", "server.key", "-out", "server.csr",
             cwd=directory)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
             cwd=directory)
    return Certs(ca=directory / "ca.crt", cert=directory / "server.crt",
                 key=directory / "server.key")
