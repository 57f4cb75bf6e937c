"""Quickstart, synchronous: a sync producer and a worker with a plain ``def`` processor.

Run:  REDIS_URL=redis://localhost:6379/0 python examples/quickstart_sync.py
Without $REDIS_URL, pyqueue uses $PYQUEUE_REDIS_URL, else its embedded server.

In production the producer and the worker are separate processes (the worker
runs ``worker.run()`` or ``pyqueue worker``). To exit by itself, this script
runs both: a helper thread waits for the jobs, then sends SIGTERM to the
process, which makes ``worker.run()`` shut down gracefully and return.
"""

import os
import signal
import threading
import time

from pyqueue import Job, Queue, Worker

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
QUEUE = "quickstart-sync"


def send_email(job: Job) -> dict:
    """A plain ``def`` processor: it runs in a worker thread, job methods are plain calls."""
    job.update_progress(50)
    job.log(f"sending to {job.data['to']}")
    time.sleep(0.1)  # pretend to talk to an SMTP server
    return {"delivered_to": job.data["to"]}


def main() -> None:
    with Queue(QUEUE, connection=REDIS_URL) as queue:
        jobs = [
            queue.add("welcome", {"to": "ada@example.com"}),
            queue.add("welcome", {"to": "alan@example.com"}, attempts=3, backoff=1),
        ]
        print("added jobs", [job.id for job in jobs])

        def wait_then_stop() -> None:
            for job in jobs:
                # Blocks until the job is completed (returns its return value)
                # or failed (raises JobFailedError).
                print(f"job {job.id} ->", job.wait_until_finished(timeout=30))
            os.kill(os.getpid(), signal.SIGTERM)  # stop worker.run() below

        waiter = threading.Thread(target=wait_then_stop)
        waiter.start()

        worker = Worker(QUEUE, send_email, connection=REDIS_URL, concurrency=2)
        worker.run()  # blocks until SIGINT/SIGTERM, then shuts down gracefully
        waiter.join()

        print("counts:", queue.get_job_counts("waiting", "active", "completed", "failed"))
        job = queue.get_job(jobs[0].id)
        assert job is not None
        print("stored:", job.name, job.return_value, "progress", job.progress,
              "logs", job.get_logs())
        queue.obliterate(force=True)  # clean up the example's keys


if __name__ == "__main__":
    main()
