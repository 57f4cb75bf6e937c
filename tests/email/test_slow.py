"""Slow, multi-process email tests: the global rate and a crash right after DATA.

Both print their measurements (run with ``-s`` to see them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from _smtp import Received, SMTPServer
from _worker_helpers import REPO, subprocess_env, wait_for_sync

from pyqueue import Queue
from pyqueue.email import enqueue_email, set_send_rate

APP = Path(__file__).with_name("_email_app.py")
pytestmark = pytest.mark.slow


class Workers:
    def __init__(self, queue: str, redis_url: str, smtp_port: int, log_dir: Path) -> None:
        self.queue, self.redis_url, self.smtp_port, self.log_dir = (queue, redis_url,
                                                                    smtp_port, log_dir)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Any] = []

    def start(self, name: str, **options: Any) -> subprocess.Popen[bytes]:
        args = [sys.executable, str(APP), self.queue, self.redis_url, str(self.smtp_port),
                "--worker-name", name]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        self.logs.append(log)
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                env=subprocess_env(), cwd=str(REPO))
        self.procs[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in self.logs:
            log.close()


def max_min_in_windows(times: list[float], window: float = 1.0,
                       step: float = 0.05) -> tuple[int, int]:
    """Largest and smallest count of ``times`` in any window ``[t, t + window)``
    that lies within the span of ``times``."""
    times = sorted(times)
    lo, hi = times[0], times[-1] - window
    most, least = 0, 10**9
    t = lo
    while t <= hi:
        n = sum(1 for x in times if t <= x < t + window)
        most, least = max(most, n), min(least, n)
        t += step
    return most, least


def test_three_processes_send_at_the_global_rate(redis_url: str, queue_name: str,
                                                 tmp_path: Path) -> None:
    rate, seconds = 14, 22
    server = SMTPServer("plain").start()
    workers = Workers(queue_name, redis_url, server.port, tmp_path)
    with Queue(queue_name, connection=redis_url) as queue:
        try:
            set_send_rate(queue, rate)  # 14/s across all workers, evenly paced
            total = rate * seconds
            for i in range(total):
                enqueue_email(queue, to=f"r{i}@example.com", subject=f"m{i}", text="x",
                              mail_uid=f"rate-{i}", category="bulk")
            for n in range(3):
                workers.start(f"w{n}", concurrency=8)
            wait_for_sync(lambda: len(server.handler.messages) >= total, seconds + 30,
                          "every mail to arrive")
            times = sorted(m.at for m in server.handler.messages)
            steady = [t for t in times if times[0] + 2 <= t]  # after warm-up
            most, least = max_min_in_windows(steady)
            span = times[-1] - times[0]
            measured = (len(times) - 1) / span
            print(f"\nglobal rate test: {len(times)} mails by 3 processes in {span:.1f}s = "
                  f"{measured:.2f}/s; any 1-s window after warm-up held {least}..{most}")
            assert len(times) == total
            assert span >= 20
            assert rate - 1 <= least and most <= rate + 1
        finally:
            workers.stop_all()
            queue.obliterate(force=True)
            server.stop()


def test_kill_right_after_data_duplicates_at_most_once(redis_url: str, queue_name: str,
                                                       tmp_path: Path) -> None:
    total, kill_at = 40, (5, 15, 25)
    server = SMTPServer("plain").start()
    workers = Workers(queue_name, redis_url, server.port, tmp_path)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    killed: list[str] = []
    options = {"concurrency": 1, "lock_duration": 2, "stalled_interval": 1}

    def on_data(received: Received) -> None:
        # Runs in the SMTP server as it accepts DATA: kill the worker that sent it
        # before it can record the job as done.
        if len(server.handler.messages) not in kill_at:
            return
        uid = received.message_id.strip("<>").split("@")[0]
        name = str(client.hget(f"bull:{queue_name}:mail-{uid}", "pb") or "")
        proc = workers.procs.get(name)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed.append(name)
            workers.start(f"{name}-x{len(killed)}", **options)

    server.handler.on_data = on_data
    with Queue(queue_name, connection=redis_url) as queue:
        try:
            for i in range(total):
                enqueue_email(queue, to=f"c{i}@example.com", subject=f"c{i}", text="x",
                              mail_uid=f"crash-{i}")
            for n in range(2):
                workers.start(f"w{n}", **options)
            wait_for_sync(lambda: queue.get_job_counts("completed")["completed"] == total, 60,
                          "every job to complete")
            ids = Counter(m.message_id for m in server.handler.messages)
            duplicates = sum(n - 1 for n in ids.values())
            lost = total - len(ids)
            print(f"\ncrash test: {len(killed)} workers killed right after DATA; "
                  f"{len(server.handler.messages)} deliveries of {total} mails: "
                  f"{duplicates} duplicate(s), {lost} lost")
            assert len(killed) == len(kill_at)
            assert lost == 0
            assert duplicates <= len(killed)
            for message_id, count in ids.items():
                assert count <= 2, message_id
            # A duplicate is the same mail (same subject) under the same Message-ID.
            by_subject = Counter((m.subject, m.message_id) for m in server.handler.messages)
            assert sum(n - 1 for n in by_subject.values()) == duplicates
            assert queue.get_job_counts("failed")["failed"] == 0
        finally:
            workers.stop_all()
            client.close()
            queue.obliterate(force=True)
            server.stop()
