"""An email worker to run with the CLI.

    export SMTP_HOST=127.0.0.1 SMTP_PORT=8025 SMTP_STARTTLS=false SMTP_TLS=false
    export SMTP_FROM="My App <noreply@myapp.example.com>"
    pyqueue worker examples.email_worker:worker

SMTP settings come from the SMTP_* variables (see docs/email.md). The worker
sends up to 8 mails at once over reused connections; the send rate is set on
the queue, once, by the app (see email_fastapi_app.py).
"""

from __future__ import annotations

import os

from pyqueue.email import EmailWorker

TEMPLATES = {
    "otp": {
        "subject": "Your login code: {{ code }}",
        "html": "<p>Hello {{ name }},</p><p>your code is <b>{{ code }}</b>. "
                "It expires in 10 minutes.</p>",
    },
}

worker = EmailWorker(
    os.environ.get("EMAIL_QUEUE", "email"),
    concurrency=8,
    templates=TEMPLATES,          # needs pyqueue-redis[templates] (Jinja2)
    autorun=False,
)
