"""Sends per second of one ``EmailWorker`` process through each transport.

Each transport sends to a local stand-in server on loopback (the ones the
test suite uses: aiosmtpd for SMTP, ``tests/email/_providers.py`` for
Amazon SES v2 and Resend), so there is no network and no provider latency:
the figure is pyqueue's own cost per mail (building the message, the HTTP or
SMTP exchange, the job's moves in Redis), with the stand-in server sharing
the machine but running in a process of its own. The SES stand-in skips its
botocore signature check here (the signing itself is still done and timed). Run from a checkout::

    python -m benchmarks.email_transports [--jobs 1000] [--concurrency 20]
        [--transports smtp,ses,resend]

Prints one line per transport: mails, seconds, mails/s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pyqueue import Queue
from pyqueue.email import EmailWorker, SMTPSettings, build_job
from pyqueue.testing import RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "email"))

from _providers import (
    ACCESS_KEY,
    REGION,
    RESEND_KEY,
    SECRET_KEY,
    ResendServer,
    SESServer,
)
from _smtp import SMTPServer

SENDER = "Bench <noreply@bench.example.com>"


def _serve(kind: str, conn: Connection) -> None:
    """In a child process: run the stand-in for ``kind``, send its address, and
    on any message from the parent stop and send the number of mails it took."""
    server: Any
    if kind == "smtp":
        server = SMTPServer("plain").start()
        conn.send(server.port)
    else:
        server = (SESServer() if kind == "ses" else ResendServer()).start()
        if isinstance(server, SESServer):
            server.check_signatures = False
        conn.send(server.url)
    conn.recv()
    count = len(server.handler.messages) if kind == "smtp" else len(server.messages)
    server.stop()
    conn.send(count)


def _options(kind: str, address: Any) -> dict[str, Any]:
    """The worker options that send through ``kind`` at ``address``."""
    if kind == "smtp":
        return {"smtp": SMTPSettings(host="127.0.0.1", port=address, starttls=False,
                                     tls=False, from_address=SENDER, timeout=10)}
    if kind == "ses":
        from pyqueue.email.ses import SESSettings, SESTransport

        return {"transport": SESTransport(SESSettings(
            region=REGION, access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
            endpoint=address, from_address=SENDER))}
    if kind == "resend":
        from pyqueue.email.resend import ResendSettings, ResendTransport

        return {"transport": ResendTransport(ResendSettings(
            api_key=RESEND_KEY, base_url=address, from_address=SENDER))}
    raise SystemExit(f"unknown transport {kind!r}")


async def run_one(kind: str, url: str, jobs: int, concurrency: int) -> tuple[int, float]:
    """Pre-load ``jobs`` mails (not timed), then time one worker sending them all."""
    name = f"bench-email-{kind}-{uuid.uuid4().hex[:6]}"
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve, args=(kind, child), daemon=True)
    process.start()
    options = _options(kind, parent.recv())
    with Queue(name, connection=url) as queue:
        batch = []
        for i in range(jobs):
            data, opts = build_job(to=f"user{i}@example.com", subject=f"Your code {i}",
                                   text=f"Code {i:06d}", html=f"<p>Code <b>{i:06d}</b></p>",
                                   mail_uid=f"bench-{i}")
            batch.append({"name": "email", "data": dict(data), "opts": opts})
        for start in range(0, jobs, 500):
            queue.add_bulk(batch[start:start + 500])
        worker = EmailWorker(name, connection=url, concurrency=concurrency, autorun=False,
                             drain_delay=0.5, **options)
        began = time.perf_counter()
        await worker.start()
        while queue.get_job_counts("completed")["completed"] < jobs:
            await asyncio.sleep(0.02)  # a benchmark's poll, not a test's synchronisation
        seconds = time.perf_counter() - began
        await worker.close()
        failed = queue.get_job_counts("failed")["failed"]
        queue.obliterate(force=True)
    parent.send("stop")
    sent: int = parent.recv()
    process.join(10)
    if failed:
        raise SystemExit(f"{kind}: {failed} mails failed")
    return sent, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--transports", default="smtp,ses,resend")
    args = parser.parse_args(argv)
    with RedisServer() as redis_server:
        for kind in args.transports.split(","):
            sent, seconds = asyncio.run(run_one(kind, redis_server.url, args.jobs,
                                                args.concurrency))
            print(f"{kind:7s} {sent:6d} mails in {seconds:6.2f} s: {sent / seconds:7.1f} "
                  f"mails/s (one worker process, concurrency {args.concurrency})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
