"""The dashboard reads one window of a state, never the whole state: the first page of a
queue with 1,000,000 completed jobs renders as fast as one with 10.

Fills two queues on a throwaway ``redis-server`` (BullMQ's format, written
with pipelines: job hashes plus the ``completed`` zset), serves the
dashboard with uvicorn on loopback and times ``GET`` of the first page (10
jobs), the last page, and a job's page, in each queue (median of ``--repeat`` requests)::

    python -m benchmarks.dashboard_pages [--big 1000000] [--repeat 30]

Also times the overview, which finds the queues by ``SCAN``ning the keyspace
(cached for 10 s by the app; ``create_app(queues=[...])`` skips the scan).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time

import httpx
import redis
import uvicorn

from pyqueue import Queue
from pyqueue._keys import QueueKeys
from pyqueue.testing import RedisServer
from pyqueue.web import create_app

PREFIX = "bench"


def fill_completed(client: redis.Redis, name: str, count: int) -> None:
    """``count`` completed jobs in queue ``name`` (ids 1..count, finished 1 ms apart)."""
    with Queue(name, connection=client, prefix=PREFIX) as queue:
        queue.add("seed", {}, job_id="seed")  # meta and id: the queue exists
        queue.remove("seed")
    keys = QueueKeys(PREFIX, name)
    start = int(time.time() * 1000) - count
    batch = 10_000
    for first in range(1, count + 1, batch):
        pipe = client.pipeline(transaction=False)
        scores = {}
        for job_id in range(first, min(first + batch, count + 1)):
            stamp = start + job_id
            pipe.hset(keys.job(str(job_id)), mapping={
                "name": "send", "data": json.dumps({"to": f"user{job_id}@example.com"}),
                "opts": '{"attempts":0}', "timestamp": stamp, "processedOn": stamp,
                "finishedOn": stamp, "returnvalue": '{"ok":true}', "atm": 1, "ats": 1,
                "delay": 0, "priority": 0})
            scores[str(job_id)] = stamp
        pipe.zadd(keys.completed, scores)
        pipe.execute()


def timed(http: httpx.Client, path: str, repeat: int) -> float:
    """Median milliseconds of ``repeat`` GETs of ``path`` (after one warm-up)."""
    assert http.get(path).status_code == 200, path
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = http.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        began = time.perf_counter()
        fill_completed(client, "big", args.big)
        fill_completed(client, "small", args.small)
        print(f"filled {args.big:,} + {args.small} completed jobs in "
              f"{time.perf_counter() - began:.1f} s")
        # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on the connections
        # (as it does when uvicorn binds the port itself).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        app = create_app(server.url, prefix=PREFIX)
        uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none",
                                           lifespan="on"))
        thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        rows = []
        with httpx.Client(base_url=url, timeout=60) as http:
            for name, count in (("small", args.small), ("big", args.big)):
                # 10 jobs a page: the small queue's whole state, so both pages
                # render the same number of rows.
                last_page = max((count + 9) // 10, 1)
                base = f"/queues/{name}?state=completed&size=10"
                rows.append((name, count, timed(http, base, args.repeat),
                             timed(http, f"{base}&page={last_page}", args.repeat),
                             timed(http, f"/queues/{name}/jobs/1", args.repeat)))
            began = time.perf_counter()
            http.get("/?refresh=1")
            overview_scan = (time.perf_counter() - began) * 1000
            overview_cached = timed(http, "/", args.repeat)
        uv.should_exit = True
        thread.join(10)
        sock.close()
        client.close()
    print("\n| queue | completed jobs | first page of 10 (ms) | last page (ms) | job page (ms) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, count, first, last, job in rows:
        print(f"| {name} | {count:,} | {first:.1f} | {last:.1f} | {job:.1f} |")
    print(f"\noverview with a keyspace SCAN: {overview_scan:.0f} ms; "
          f"cached queue list: {overview_cached:.1f} ms (median)")


if __name__ == "__main__":
    main()
