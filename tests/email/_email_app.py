"""An EmailWorker in its own process, for the multi-process email tests.

    python _email_app.py QUEUE REDIS_URL SMTP_PORT [--worker-name N]
        [--concurrency N] [--lock-duration S] [--stalled-interval S]
"""

from __future__ import annotations

import argparse
import logging

from pyqueue.email import EmailWorker, SMTPSettings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("queue")
    parser.add_argument("redis_url")
    parser.add_argument("smtp_port", type=int)
    parser.add_argument("--worker-name", default=None)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--lock-duration", type=float, default=30)
    parser.add_argument("--stalled-interval", type=float, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = SMTPSettings(host="127.0.0.1", port=args.smtp_port, starttls=False, tls=False,
                            from_address="App <noreply@app.example.com>", timeout=10)
    EmailWorker(args.queue, connection=args.redis_url, smtp=settings,
                concurrency=args.concurrency, worker_name=args.worker_name,
                lock_duration=args.lock_duration, stalled_interval=args.stalled_interval,
                drain_delay=0.5).run()


if __name__ == "__main__":
    main()
