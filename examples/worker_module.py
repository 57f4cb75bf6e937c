"""A worker module for the command line:

    pyqueue worker examples.worker_module:worker              (Ctrl-C to stop)
    pyqueue worker examples.worker_module:resize --queue images

Run it from the repository root (the command imports MODULE from the current
directory). The first form runs the `worker` object below as it is: its queue,
connection and options come from this file (the command's --redis and
--prefix do not apply to a ready Worker; --concurrency does). The second form
passes a plain function; then the command builds the Worker from --queue,
--redis, --prefix and --concurrency.

Run the file itself (`python examples/worker_module.py`) to add three jobs,
process them and exit.
"""

import os
import signal
import threading

from pyqueue import Job, Queue, Worker

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
QUEUE = "images"


def resize(job: Job) -> dict:
    """A plain ``def`` processor; it runs in one of the worker's threads."""
    width = int(job.data["width"])
    job.update_progress(100)
    return {"path": job.data["path"], "width": width // 2}


# Created at import time but not started: there is no running event loop yet.
# `pyqueue worker` (or worker.run()) starts it.
worker = Worker(QUEUE, resize, connection=REDIS_URL, concurrency=4)


if __name__ == "__main__":
    with Queue(QUEUE, connection=REDIS_URL) as queue:
        jobs = [queue.add("resize", {"path": f"/img/{i}.png", "width": 800 + i})
                for i in range(3)]

        def stop_when_done() -> None:
            for job in jobs:
                print(job.id, job.wait_until_finished(timeout=30))
            os.kill(os.getpid(), signal.SIGINT)  # like Ctrl-C: graceful shutdown

        threading.Thread(target=stop_when_done).start()
        worker.run()
        print("worker state:", worker.state, "jobs processed:", worker.jobs_processed)
        queue.obliterate(force=True)  # clean up the example's keys
