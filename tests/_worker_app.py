"""A pyqueue worker in its own process, driven by the worker tests (not a test module).

``python tests/_worker_app.py QUEUE REDIS_URL [--lock-duration S] ...`` runs
``Worker.run()`` (so SIGINT/SIGTERM shut it down). Each job writes
``app:<queue>:started:<id>`` and then waits for an item on
``app:<queue>:release:<id>`` (at most ``data["block"]`` seconds, default 60);
it returns ``{"pid": ..., "released": bool}``. The worker's ``state`` is
mirrored into ``app:<queue>:state`` so a test can see it start closing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import redis.asyncio

from pyqueue import Job, Worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("queue")
    parser.add_argument("redis_url")
    parser.add_argument("--lock-duration", type=float, default=30)
    parser.add_argument("--stalled-interval", type=float, default=30)
    parser.add_argument("--max-stalled-count", type=int, default=1)
    parser.add_argument("--shutdown-grace", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    prefix = f"app:{args.queue}"

    async def process(job: Job) -> Any:
        client = redis.asyncio.Redis.from_url(args.redis_url, socket_timeout=None)
        try:
            await client.set(f"{prefix}:started:{job.id}", os.getpid())
            block = (job.data or {}).get("block", 60)
            released = await client.blpop([f"{prefix}:release:{job.id}"], timeout=block)
        finally:
            await client.aclose()
        return {"pid": os.getpid(), "released": released is not None}

    class AppWorker(Worker):
        async def start(self) -> None:
            await super().start()
            self._app_monitor = asyncio.get_running_loop().create_task(self._mirror_state())

        async def _mirror_state(self) -> None:
            client = redis.asyncio.Redis.from_url(args.redis_url, socket_timeout=None)
            last = None
            try:
                while last != "closed":
                    if self.state != last:
                        last = self.state
                        await client.set(f"{prefix}:state", last)
                    await asyncio.sleep(0.01)
            finally:
                await client.aclose()

    worker = AppWorker(
        args.queue, process, connection=args.redis_url, concurrency=args.concurrency,
        lock_duration=args.lock_duration, stalled_interval=args.stalled_interval,
        max_stalled_count=args.max_stalled_count, shutdown_grace=args.shutdown_grace,
    )
    worker.run()
    print("worker exited cleanly", flush=True)


if __name__ == "__main__":
    main()
