"""``pyqueue.email``: the reference consumer, an email-sending worker.

Install with ``pip install 'pyqueue-redis[email]'`` (``aiosmtplib``,
``email-validator``; ``pyqueue-redis[templates]`` adds Jinja2).

Produce with :func:`enqueue_email`, consume with :class:`EmailWorker`::

    from pyqueue import Queue
    from pyqueue.email import EmailWorker, enqueue_email

    with Queue("email") as queue:
        enqueue_email(queue, to="ada@example.com", subject="Your code",
                      text="123456", mail_uid="otp-ada-1")

    EmailWorker("email").run()      # SMTP_* settings from the environment

Transports: SMTP (default), Amazon SES v2 (``pyqueue.email.ses``) and Resend
(``pyqueue.email.resend``), ``pip install 'pyqueue-redis[providers]'``.
See docs/email.md.
"""

from __future__ import annotations

from .batch import enqueue_batch
from .campaign import campaign_job_id
from .classify import Verdict, classify_exception, classify_reply
from .deadletter import DeadLetters, dlq_name
from .enqueue import PRIORITY_BULK, PRIORITY_TRANSACTIONAL, build_job, enqueue_email
from .forget import forget
from .limits import set_send_rate
from .message import (
    MAX_ATTACHMENT_BYTES,
    Attachment,
    EmailData,
    build_message,
    html_to_text,
    job_id_for,
    message_id_for,
    validate_data,
)
from .quota import DailyQuota
from .sender import SMTPSender
from .sendlimits import SendLimit
from .settings import SMTPSettings
from .suppressions import AsyncSuppressions, Suppressions
from .templates import TemplateError, Templates
from .transport import ProviderError, Transport, transport_from_env
from .worker import EmailWorker, PermanentSendError, TemporarySendError

#: ``EmailMessage``-shaped job data (an alias of :class:`EmailData`).
EmailMessageData = EmailData

__all__ = [
    "MAX_ATTACHMENT_BYTES",
    "PRIORITY_BULK",
    "PRIORITY_TRANSACTIONAL",
    "AsyncSuppressions",
    "Attachment",
    "DailyQuota",
    "DeadLetters",
    "EmailData",
    "EmailMessageData",
    "EmailWorker",
    "PermanentSendError",
    "ProviderError",
    "SMTPSender",
    "SMTPSettings",
    "SendLimit",
    "Suppressions",
    "TemplateError",
    "Templates",
    "TemporarySendError",
    "Transport",
    "Verdict",
    "build_job",
    "build_message",
    "campaign_job_id",
    "classify_exception",
    "classify_reply",
    "dlq_name",
    "enqueue_batch",
    "enqueue_email",
    "forget",
    "html_to_text",
    "job_id_for",
    "message_id_for",
    "set_send_rate",
    "transport_from_env",
    "validate_data",
]
