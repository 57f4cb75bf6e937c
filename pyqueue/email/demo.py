"""The email part of ``pyqueue demo``: the EmailWorker against a local SMTP server.

Starts an ``aiosmtpd`` server on a free loopback port (plain SMTP, as for
local development) and shows: an OTP that overtakes a newsletter, the
newsletter sent under a global rate limit, a hard bounce landing in the
suppression list, a temporary failure that is retried, and a policy
rejection that ends in the dead-letter queue and is replayed after a "fix".
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
import uuid
from typing import Any, TextIO

from ..job import Job
from ..queue import Queue
from .deadletter import DeadLetters
from .enqueue import enqueue_email
from .settings import SMTPSettings
from .suppressions import Suppressions
from .worker import EmailWorker

NEWSLETTER_SIZE = 10
RATE = 5  # newsletter mails per second, across all workers


class _DemoSMTPHandler:
    """Accepts mail, with three scripted failures."""

    def __init__(self, say: Any) -> None:
        self.say = say
        self.received: list[tuple[str, str, str]] = []
        self.flaky_left = 1
        self.blocked = True

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() == "nobody@example.com":
            return "550 5.1.1 <nobody@example.com>: Recipient address rejected: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=email.policy.default)
        subject = str(msg["Subject"])
        if "[flaky]" in subject and self.flaky_left > 0:
            self.flaky_left -= 1
            self.say(f"smtp   451 temporary failure for {subject!r}")
            return "451 4.3.0 Temporary local problem, try again"
        if "[blocked]" in subject and self.blocked:
            self.say(f"smtp   554 policy rejection for {subject!r}")
            return "554 5.7.1 Message rejected: sender not authorised for this content"
        to = ", ".join(envelope.rcpt_tos)
        self.received.append((to, subject, str(msg["Message-ID"])))
        self.say(f"smtp   250 received {subject!r} for {to} {msg['Message-ID']}")
        return "250 2.0.0 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _smtp_controller() -> Any:
    """aiosmtpd's ``Controller`` class (a test SMTP server: the ``demo`` extra, not ``email``)."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        raise ImportError("the email demo needs aiosmtpd (a local SMTP server): "
                          "pip install 'pyqueue-redis[demo]'") from None
    return Controller


async def run_email_demo(url: str, out: TextIO, *, queue_name: str | None = None,
                         start: float | None = None) -> dict[str, int]:
    """Run the email demo against Redis at ``url``; returns counts: ``sent``
    (messages the SMTP server accepted), ``completed``, ``failed``,
    ``suppressed``, ``retried``, ``dead_lettered``, ``replayed``.

    ``start`` is the ``time.monotonic()`` the narration's clock counts from
    (default: now). Raises ImportError when aiosmtpd is not installed."""
    Controller = _smtp_controller()
    name = queue_name or f"demo-email-{uuid.uuid4().hex[:6]}"
    start = time.monotonic() if start is None else start

    def say(text: str) -> None:
        out.write(f"[{time.monotonic() - start:6.2f}s] {text}\n")
        out.flush()

    handler = _DemoSMTPHandler(say)
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10)
    await asyncio.to_thread(controller.start)
    say(f"local SMTP server (aiosmtpd) on 127.0.0.1:{port}; queue {name!r}")
    settings = SMTPSettings(host="127.0.0.1", port=port, starttls=False, tls=False,
                            from_address="Demo App <noreply@demo.example.com>", timeout=10)
    queue = Queue(name, connection=url)
    dead = DeadLetters(name, connection=url)
    supp = Suppressions(name, connection=url)
    counts: dict[str, int] = {"retried": 0}
    worker: EmailWorker | None = None
    try:
        queue.set_global_rate_limit(RATE, 1)
        say(f"global rate limit: {RATE} mails/s across all workers")
        for i in range(NEWSLETTER_SIZE):
            enqueue_email(queue, to=f"reader{i}@example.com", subject=f"Newsletter #{i + 1}",
                          html=f"<h1>News</h1><p>Hello reader {i}!</p>",
                          mail_uid=f"news-2026-01-reader{i}", category="bulk")
        enqueue_email(queue, to="ada@example.com", subject="Your login code: 493817",
                      text="Your code is 493817. It expires in 10 minutes.",
                      mail_uid="otp-ada-1")
        enqueue_email(queue, to="nobody@example.com", subject="Welcome!", text="Hi!",
                      mail_uid="welcome-nobody")
        enqueue_email(queue, to="alan@example.com", subject="Receipt [flaky]",
                      text="Thanks for your order.", mail_uid="receipt-alan-1",
                      attempts=3, backoff={"type": "exponential", "delay": 0.3, "jitter": 0.5})
        enqueue_email(queue, to="grace@example.com", subject="Invoice [blocked]",
                      text="Your invoice.", mail_uid="invoice-grace-1", attempts=3)
        total = NEWSLETTER_SIZE + 4
        say(f"enqueued {NEWSLETTER_SIZE} newsletter mails (bulk), then an OTP "
            "(transactional: it goes first), a mail to a dead mailbox, a flaky one and "
            "one the server will reject")
        finished = asyncio.Event()
        done = {"completed": 0, "failed": 0}

        def on_completed(job: Job, result: Any) -> None:
            done["completed"] += 1
            if isinstance(result, dict) and result.get("status") == "suppressed":
                say(f"worker skipped {job.id}: recipient suppressed")
            if done["completed"] + done["failed"] >= total:
                finished.set()

        def on_failed(job: Job, exc: BaseException) -> None:
            final = job.attempts_made >= job.attempts or not isinstance(exc, Exception) \
                or type(exc).__name__ == "PermanentSendError"
            if final:
                done["failed"] += 1
                say(f"worker FAILED {job.id}: {exc}")
            else:
                counts["retried"] += 1
                say(f"worker will retry {job.id} (attempt {job.attempts_made} of "
                    f"{job.attempts}): {exc}")
            if done["completed"] + done["failed"] >= total:
                finished.set()

        worker = EmailWorker(name, connection=url, smtp=settings, concurrency=2,
                             autorun=False, drain_delay=0.5)
        worker.on("completed", on_completed).on("failed", on_failed)
        await worker.start()
        await asyncio.wait_for(finished.wait(), timeout=60)

        suppressed = supp.list()
        for entry in suppressed:
            say(f"suppression list: {entry['address']} ({entry['reason']})")
        dead_entries = dead.list()
        for entry in dead_entries:
            say(f"dead-letter queue: {entry['job_id']} ({entry['kind']}): {entry['reason']}")
        counts["suppressed"] = len(suppressed)
        counts["dead_lettered"] = len(dead_entries)

        say("fixing the problem on the server side, then replaying the dead-letter queue")
        handler.blocked = False
        replayed = [new_id for entry in dead_entries if entry["kind"] == "fail"
                    for new_id in dead.replay(entry["job_id"])]
        counts["replayed"] = len(replayed)
        for job_id in replayed:
            job = queue.get_job(job_id)
            assert job is not None
            await asyncio.to_thread(job.wait_until_finished, 30)
            say(f"replayed {job_id}: delivered")
        await worker.close()
        worker = None
        counts.update(queue.get_job_counts("completed", "failed"))
        counts["sent"] = len(handler.received)
        say(f"SMTP server received {counts['sent']} messages; the first was "
            f"{handler.received[0][1]!r}")
        say(f"final: {counts}")
        return counts
    finally:
        if worker is not None:
            await worker.close(force=True)
        queue.obliterate(force=True)
        with Queue(f"{name}-dlq", connection=queue.client) as dlq:
            dlq.obliterate(force=True)
        queue.client.delete(supp.key)
        supp.close()
        dead.close()
        queue.close()
        await asyncio.to_thread(controller.stop)
