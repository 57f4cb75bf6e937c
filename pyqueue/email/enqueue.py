"""``enqueue_email``: validate a mail and add it to a queue, idempotently."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, overload

from ..job import AsyncJob, Job
from ..queue import AsyncQueue, Queue
from .message import (
    Attachment,
    EmailData,
    domain_of,
    encode_attachment,
    job_id_for,
    validate_data,
)

#: Priority of transactional mail (OTP, password reset): taken first.
PRIORITY_TRANSACTIONAL = 1
#: Priority of bulk mail (newsletters): taken after every transactional mail.
PRIORITY_BULK = 100
CATEGORIES = {"transactional": PRIORITY_TRANSACTIONAL, "bulk": PRIORITY_BULK}
#: Job options used unless the call or the queue's ``default_job_options`` set them.
DEFAULT_JOB_OPTIONS: dict[str, Any] = {
    "attempts": 6,
    "backoff": {"type": "exponential", "delay": 10, "jitter": 0.5},
}
JOB_NAME = "email"


def build_job(*, to: str | Sequence[str], subject: str | None = None, text: str | None = None,
              html: str | None = None, mail_uid: str | None = None,
              cc: str | Sequence[str] | None = None, bcc: str | Sequence[str] | None = None,
              from_address: str | None = None, reply_to: str | None = None,
              headers: Mapping[str, str] | None = None,
              attachments: Sequence[Attachment | tuple[str, bytes, str]] | None = None,
              template: str | None = None, variables: Mapping[str, Any] | None = None,
              category: str = "transactional", group_by_domain: bool = False,
              mail_type: str | None = None, user_id: str | None = None,
              queue_defaults: Mapping[str, Any] | None = None,
              **job_options: Any) -> tuple[EmailData, dict[str, Any]]:
    """The validated job data and the job options for one mail (no I/O)."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {sorted(CATEGORIES)}, got {category!r}")
    raw: dict[str, Any] = {"to": to}
    for key, value in (("cc", cc), ("bcc", bcc), ("from", from_address),
                       ("reply_to", reply_to), ("subject", subject), ("text", text),
                       ("html", html), ("template", template), ("type", mail_type),
                       ("user_id", user_id)):
        if value is not None:
            raw[key] = value
    if headers:
        raw["headers"] = dict(headers)
    if variables is not None:
        raw["variables"] = dict(variables)
    if attachments:
        raw["attachments"] = [encode_attachment(a[0], a[1], a[2]) if isinstance(a, tuple)
                              else dict(a) for a in attachments]
    if mail_uid is None:
        mail_uid = uuid.uuid4().hex
    raw["mail_uid"] = mail_uid
    raw["category"] = category
    data = validate_data(raw)
    defaults = dict(queue_defaults or {})
    opts: dict[str, Any] = {k: v for k, v in DEFAULT_JOB_OPTIONS.items() if k not in defaults}
    if "priority" not in defaults:
        opts["priority"] = CATEGORIES[category]
    if group_by_domain:
        first = (data.get("to") or data.get("cc") or data.get("bcc") or [""])[0]
        opts["group"] = domain_of(first)
    opts.update(job_options)
    if "job_id" in opts and opts["job_id"] != job_id_for(mail_uid):
        raise ValueError("job_id comes from mail_uid; pass mail_uid instead of job_id")
    opts["job_id"] = job_id_for(mail_uid)
    return data, opts


@overload
def enqueue_email(queue: Queue, *, to: str | Sequence[str], subject: str | None = ...,
                  text: str | None = ..., html: str | None = ..., mail_uid: str | None = ...,
                  **kwargs: Any) -> Job: ...


@overload
def enqueue_email(queue: AsyncQueue, *, to: str | Sequence[str], subject: str | None = ...,
                  text: str | None = ..., html: str | None = ..., mail_uid: str | None = ...,
                  **kwargs: Any) -> Coroutine[Any, Any, AsyncJob]: ...


def enqueue_email(queue: Queue | AsyncQueue, *, to: str | Sequence[str],
                  subject: str | None = None, text: str | None = None, html: str | None = None,
                  mail_uid: str | None = None,
                  **kwargs: Any) -> Job | Coroutine[Any, Any, AsyncJob]:
    """Validate one mail and add it to ``queue``; returns the job (a coroutine
    for an ``AsyncQueue``).

    ``to`` is one address or a list; each entry must be exactly one address.
    Other mail fields are keywords: ``cc``, ``bcc``, ``from_address``,
    ``reply_to``, ``headers``, ``attachments`` (entries
    ``(filename, bytes, content_type)`` or base64 dicts), ``template`` and
    ``variables``, ``category`` (``"transactional"``, the default, priority 1;
    or ``"bulk"``, priority 100), ``group_by_domain`` (job group = the first
    recipient's domain, for per-domain limits), ``mail_type`` and ``user_id``
    (what per-type and per-user ``SendLimit`` rules look at). Everything else is a job
    option (``attempts``, ``backoff``, ``delay``, ``priority``, ``group``...).

    The job id comes from ``mail_uid`` (``mail-<uid>``), so adding the same
    ``mail_uid`` twice sends once; without one a random uid is used. Raises
    ``ValueError`` before anything is written for CR/LF in a header field, an
    address that parses to several recipients, or an invalid address.
    """
    core = getattr(queue, "_core", None)
    defaults = core.default_job_options if core is not None else {}
    data, opts = build_job(to=to, subject=subject, text=text, html=html, mail_uid=mail_uid,
                           queue_defaults=defaults, **kwargs)
    return queue.add(JOB_NAME, dict(data), **opts)
