"""Job data describing one email, its validation, and the ``EmailMessage`` built from it.

Job data (JSON) has this shape (:class:`EmailData`)::

    {"to": ["Ada <ada@example.com>"], "cc": [], "bcc": [], "from": "...",
     "reply_to": "...", "subject": "...", "text": "...", "html": "...",
     "headers": {"X-Campaign": "spring"},
     "attachments": [{"filename": "a.pdf", "content_type": "application/pdf",
                      "content": "<base64>"}],
     "template": "otp", "variables": {"code": "123456"},
     "mail_uid": "otp-42", "category": "transactional",
     "type": "login-otp", "user_id": "42"}

The same checks run when a mail is enqueued (``enqueue_email``) and again in
the worker (jobs may come from other producers): CR or LF in a header field,
an address that parses to several recipients, or an invalid address raise
``ValueError``. The Message-ID is derived from ``mail_uid`` and the sender's
domain, so a resend after a crash carries the same Message-ID.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses
from html import unescape
from html.parser import HTMLParser
from typing import Any, TypedDict

#: Total decoded size of a message's attachments (job data stays small).
MAX_ATTACHMENT_BYTES = 256 * 1024
#: Most recipients (to + cc + bcc) one message may have.
MAX_RECIPIENTS = 100

_SAFE_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,127}$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII except ':' and space
_RESERVED_HEADERS = {"to", "cc", "bcc", "from", "reply-to", "subject", "message-id", "date",
                     "content-type", "content-transfer-encoding", "mime-version"}


class Attachment(TypedDict, total=False):
    """One attachment in job data: ``content`` is base64 text."""

    filename: str
    content_type: str
    content: str


EmailData = TypedDict("EmailData", {
    "to": list[str],
    "cc": list[str],
    "bcc": list[str],
    "from": str,
    "reply_to": str,
    "subject": str,
    "text": str,
    "html": str,
    "headers": dict[str, str],
    "attachments": list[Attachment],
    "template": str,
    "variables": dict[str, Any],
    "mail_uid": str,
    "category": str,
    "type": str,
    "user_id": str,
}, total=False)
EmailData.__doc__ = "The job data of one email (all keys optional except a recipient)."


def check_header_value(name: str, value: object) -> str:
    """``value`` as a str, refusing CR, LF and NUL (header injection)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str, got {type(value).__name__}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"{name} must not contain CR, LF or NUL: {value!r}")
    return value


def parse_address(value: object, field: str = "address") -> str:
    """Validate one address (``ada@example.com`` or ``Ada <ada@example.com>``).

    Returns it normalised (domain lower-cased, display name kept). Raises
    ``ValueError`` for CR/LF, for text that parses to several recipients, and
    for an invalid address. No DNS lookups.
    """
    from email_validator import EmailNotValidError, validate_email

    text = check_header_value(field, value).strip()
    if not text:
        raise ValueError(f"{field} is empty")
    parsed = getaddresses([text])
    if len(parsed) != 1:
        raise ValueError(f"{field} {text!r} parses to {len(parsed)} recipients; "
                         "give one address per entry")
    name, addr = parsed[0]
    if not addr or addr.count("@") != 1:
        raise ValueError(f"{field} {text!r} is not a valid address")
    try:
        info = validate_email(addr, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ValueError(f"{field} {text!r} is not a valid address: {exc}") from None
    normalized = info.normalized
    return formataddr((name, normalized)) if name else normalized


def parse_address_list(value: object, field: str) -> list[str]:
    """A str or a list of str, each one address; returns the normalised list."""
    if value is None:
        return []
    items: Iterable[object] = [value] if isinstance(value, str) else value  # type: ignore[assignment]
    if not isinstance(items, Sequence):
        raise ValueError(f"{field} must be a str or a list of str, got {value!r}")
    return [parse_address(item, field) for item in items]


def bare_address(address: str) -> str:
    """``ada@example.com`` from ``Ada <ada@example.com>``, lower-cased (for lookups)."""
    return getaddresses([address])[0][1].strip().lower()


def domain_of(address: str) -> str:
    """The domain of an address, lower-cased."""
    return bare_address(address).rpartition("@")[2]


def message_id_for(mail_uid: str, from_address: str | None) -> str:
    """``<mail_uid@domain-of-from>``; a uid that is not a safe local part is hashed."""
    local = mail_uid if _SAFE_UID.match(mail_uid) and ".." not in mail_uid \
        and not mail_uid.endswith(".") else \
        "h" + hashlib.sha256(mail_uid.encode()).hexdigest()[:40]
    domain = domain_of(from_address) if from_address else ""
    if not domain:
        domain = socket.getfqdn() or "localhost"
    return f"<{local}@{domain}>"


def job_id_for(mail_uid: str) -> str:
    """The job id for a ``mail_uid``: ``mail-<uid>``, hashed when the uid has
    characters a job id may not hold (such as ``:``) or is long."""
    if _SAFE_UID.match(mail_uid):
        return f"mail-{mail_uid}"
    return "mail-h" + hashlib.sha256(mail_uid.encode()).hexdigest()[:40]


def encode_attachment(filename: str, content: bytes,
                      content_type: str = "application/octet-stream") -> Attachment:
    """An attachment entry for job data (base64 content)."""
    return {"filename": filename, "content_type": content_type,
            "content": base64.b64encode(content).decode("ascii")}


def _check_attachments(value: object) -> list[tuple[str, str, bytes]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"attachments must be a list, got {type(value).__name__}")
    out: list[tuple[str, str, bytes]] = []
    total = 0
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("content"), str):
            raise ValueError(f"attachments[{i}] must be a mapping with base64 'content'")
        filename = check_header_value(f"attachments[{i}].filename",
                                      item.get("filename") or f"attachment-{i + 1}")
        ctype = check_header_value(f"attachments[{i}].content_type",
                                   item.get("content_type") or "application/octet-stream")
        if ctype.count("/") != 1:
            raise ValueError(f"attachments[{i}].content_type must be type/subtype, "
                             f"got {ctype!r}")
        try:
            content = base64.b64decode(item["content"], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"attachments[{i}].content is not valid base64") from None
        total += len(content)
        if total > MAX_ATTACHMENT_BYTES:
            raise ValueError(f"attachments exceed {MAX_ATTACHMENT_BYTES} bytes in total; "
                             "link to large files instead")
        out.append((filename, ctype, content))
    return out


def validate_data(data: Mapping[str, Any]) -> EmailData:
    """Check and normalise job data; raises ``ValueError`` naming the problem.

    A message needs a recipient, and a body (``text``, ``html`` or a
    ``template``). Addresses are validated; header fields must not hold CR/LF.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"email job data must be a mapping, got {type(data).__name__}")
    known = set(EmailData.__annotations__)
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown email fields {sorted(unknown)}; known: {sorted(known)}")
    out: EmailData = {}
    for field in ("to", "cc", "bcc"):
        addresses = parse_address_list(data.get(field), field)
        if addresses:
            out[field] = addresses
    count = len(out.get("to", [])) + len(out.get("cc", [])) + len(out.get("bcc", []))
    if count == 0:
        raise ValueError("an email needs at least one recipient in to, cc or bcc")
    if count > MAX_RECIPIENTS:
        raise ValueError(f"an email may have at most {MAX_RECIPIENTS} recipients, got {count}")
    if data.get("from") is not None:
        out["from"] = parse_address(data["from"], "from")
    if data.get("reply_to") is not None:
        out["reply_to"] = parse_address(data["reply_to"], "reply_to")
    if data.get("subject") is not None:
        out["subject"] = check_header_value("subject", data["subject"])
    for body in ("text", "html"):
        value = data.get(body)
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"{body} must be a str, got {type(value).__name__}")
            out[body] = value
    headers = data.get("headers")
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise ValueError("headers must be a mapping of name to value")
        clean: dict[str, str] = {}
        for name, value in headers.items():
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid field name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the worker; use the field instead")
            clean[name] = check_header_value(f"header {name}", value)
        if clean:
            out["headers"] = clean
    if data.get("attachments"):
        _check_attachments(data["attachments"])
        out["attachments"] = list(data["attachments"])
    if data.get("template") is not None:
        out["template"] = check_header_value("template", data["template"])
        variables = data.get("variables") or {}
        if not isinstance(variables, Mapping):
            raise ValueError("variables must be a mapping")
        out["variables"] = dict(variables)
    elif data.get("variables"):
        raise ValueError("variables given without a template")
    if "text" not in out and "html" not in out and "template" not in out:
        raise ValueError("an email needs text, html or a template")
    if data.get("mail_uid") is not None:
        uid = check_header_value("mail_uid", data["mail_uid"])
        if not uid:
            raise ValueError("mail_uid must not be empty")
        out["mail_uid"] = uid
    if data.get("category") is not None:
        out["category"] = check_header_value("category", data["category"])
    for name in ("type", "user_id"):  # for per-type and per-user limits (sendlimits)
        value = data.get(name)
        if value is not None:
            text = check_header_value(name, value)
            if not text or len(text) > 200:
                raise ValueError(f"{name} must be 1 to 200 characters")
            out[name] = text  # type: ignore[literal-required]
    return out


class _TextExtractor(HTMLParser):
    """Plain text from HTML: paragraphs, line breaks, list items, link targets."""

    BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "ul", "ol",
             "blockquote", "section", "article", "header", "footer", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.href: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in self.BLOCK:
            self.parts.append("\n\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "a":
            self.href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip = max(self.skip - 1, 0)
        elif tag in self.BLOCK:
            self.parts.append("\n\n")
        elif tag == "a" and self.href:
            href = self.href.pop()
            if href and not href.startswith(("#", "mailto:")):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable text part for an HTML-only message."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = unescape("".join(parser.parts))
    lines = [line.strip() for line in text.splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def build_message(data: EmailData, *, default_from: str | None,
                  mail_uid: str) -> tuple[EmailMessage, str, list[str]]:
    """The ``EmailMessage``, the envelope sender and the envelope recipients.

    ``data`` must have passed :func:`validate_data` (and template rendering).
    """
    sender = data.get("from") or default_from
    if not sender:
        raise ValueError("no sender: set 'from' in the mail or SMTP_FROM")
    sender = parse_address(sender, "from")
    msg = EmailMessage()
    msg["From"] = sender
    for field, header in (("to", "To"), ("cc", "Cc")):
        addresses = data.get(field)
        if addresses:
            msg[header] = ", ".join(addresses)  # type: ignore[arg-type]
    if data.get("reply_to"):
        msg["Reply-To"] = data["reply_to"]
    msg["Subject"] = data.get("subject", "")
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id_for(mail_uid, default_from or sender)
    for name, value in (data.get("headers") or {}).items():
        msg[name] = value
    html = data.get("html")
    text = data.get("text")
    if text is None and html is not None:
        text = html_to_text(html)
    msg.set_content(text or "")
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, content in _check_attachments(data.get("attachments")):
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    recipients = [bare_address(a) for f in ("to", "cc", "bcc")
                  for a in data.get(f, [])]  # type: ignore[attr-defined]
    envelope_from = Address(addr_spec=bare_address(sender)).addr_spec
    return msg, envelope_from, list(dict.fromkeys(recipients))
