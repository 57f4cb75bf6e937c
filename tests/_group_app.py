"""A pyqueue worker in its own process, for the multi-process group and
cancellation tests (not a test module).

``python tests/_group_app.py QUEUE REDIS_URL [--concurrency N]`` runs
``Worker.run()``. Every key it writes is under ``gapp:<queue>:``:

- ``ready:<pid>``: set once the worker has started (the test waits for all).
- ``active`` (hash group -> jobs of that group running now) and ``max``
  (hash group -> the most seen at once), updated atomically at each start.
- ``starts`` (list): ``[job_id, group, wall-clock time, pid]`` JSON per start.
- ``cancelled:<id>``: set when the processor saw ``asyncio.CancelledError``.

A job sleeps ``data["hold"]`` seconds (default 0.1). Its group is
``data["g"]`` (``""`` for an ungrouped job).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import redis
import redis.asyncio

from pyqueue import Job, Worker

ENTER = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if n > tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') then
  redis.call('HSET', KEYS[2], ARGV[1], n)
end
return n
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("queue")
    parser.add_argument("redis_url")
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    prefix = f"gapp:{args.queue}"
    pid = os.getpid()
    client: redis.asyncio.Redis | None = None

    async def process(job: Job) -> Any:
        assert client is not None
        data = job.data or {}
        gid = data.get("g", "")
        await client.eval(ENTER, 2, f"{prefix}:active", f"{prefix}:max", gid)
        await client.rpush(f"{prefix}:starts", json.dumps([job.id, gid, time.time(), pid]))
        try:
            await asyncio.sleep(data.get("hold", 0.1))
        except asyncio.CancelledError:
            await client.set(f"{prefix}:cancelled:{job.id}", pid)
            raise
        finally:
            await client.hincrby(f"{prefix}:active", gid, -1)
        return {"pid": pid}

    class AppWorker(Worker):
        async def start(self) -> None:
            nonlocal client
            client = redis.asyncio.Redis.from_url(args.redis_url)
            await super().start()
            await client.set(f"{prefix}:ready:{pid}", 1)

        async def close(self, force: bool = False) -> None:
            await super().close(force)
            if client is not None:
                await client.aclose()

    worker = AppWorker(args.queue, process, connection=args.redis_url,
                       concurrency=args.concurrency, shutdown_grace=2)
    worker.run()


if __name__ == "__main__":
    main()


class GroupApps:
    """``n`` worker subprocesses running this module on one queue (for tests)."""

    def __init__(self, queue: str, redis_url: str, n: int, log_dir: Any,
                 concurrency: int = 1) -> None:
        import subprocess
        import sys
        from pathlib import Path

        from _worker_helpers import REPO, subprocess_env

        self.queue = queue
        self.prefix = f"gapp:{queue}"
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.logs = []
        self.procs = []
        for i in range(n):
            log = open(Path(log_dir) / f"gapp-{queue}-{i}.log", "wb")  # noqa: SIM115
            self.logs.append(log)
            self.procs.append(subprocess.Popen(
                [sys.executable, str(Path(__file__)), queue, redis_url,
                 "--concurrency", str(concurrency)],
                stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(), cwd=str(REPO)))

    def ready(self) -> bool:
        return len(self.client.keys(f"{self.prefix}:ready:*")) == len(self.procs)

    def check_alive(self) -> None:
        from pathlib import Path

        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                log.flush()
                raise AssertionError(f"worker process exited ({proc.returncode}): "
                                     f"{Path(log.name).read_text(errors='replace')}")

    def starts(self) -> list[list[Any]]:
        return [json.loads(s) for s in self.client.lrange(f"{self.prefix}:starts", 0, -1)]

    def max_active(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.client.hgetall(f"{self.prefix}:max").items()}

    def cancelled(self, job_id: str) -> bool:
        return bool(self.client.exists(f"{self.prefix}:cancelled:{job_id}"))

    def close(self) -> None:
        import signal
        import subprocess

        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for log in self.logs:
            log.close()
        self.client.close()
