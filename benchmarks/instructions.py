"""Redis's instructions per job, counted under callgrind: ``python -m benchmarks.instructions``.

Timings on a shared 2-core machine move 10-20 % between runs; the number of
instructions Redis executes does not (about 1-4 %: it still depends on how
the work falls into calls). This runs ``redis-server`` under
``valgrind --tool=callgrind`` with collection switched off, prepares the
work, switches collection on (``callgrind_control -i on``) only around the
measured part, and divides Redis's instruction total by the number of jobs.
Under callgrind Redis runs about 50 times slower, so it is the bottleneck:
each worker holds its full concurrency in flight, as on a many-core machine
where one Redis core is saturated.

Two measurements:

* ``workers``: ``--jobs`` no-op jobs (200-byte payload) pre-loaded into a
  paused queue; P worker processes of each peer (``pyqueue worker
  --processes P`` or P BullMQ workers under Node) at concurrency 100 connect;
  collection goes on and the queue is resumed; it goes off when every job is
  completed. Also prints the script calls per job and the ``LREM`` calls.
* ``adds``: ``--jobs`` adds after a warm-up, one at a time (``--inflight 1``)
  or with 50 in flight, pyqueue's ``AsyncQueue.add`` against BullMQ's
  ``Queue.add`` (``benchmarks/node/add_cost.mjs``).

Examples (each run takes a few minutes)::

    python -m benchmarks.instructions workers --processes 2,12
    python -m benchmarks.instructions adds --inflight 1,50 --jobs 3000

Needs ``valgrind`` (Debian: ``apt-get install valgrind``); BullMQ needs Node
and ``benchmarks/node/node_modules`` (``./scripts/setup.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import redis

from benchmarks.add_cost import _bullmq_adds, _pyqueue_adds
from benchmarks.scaling import node_available, preload, start_workers, stop_workers
from pyqueue import Queue
from pyqueue._server import find_redis_server, free_port


class Callgrind:
    """A ``redis-server`` under callgrind, collection off until :meth:`on`."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.out = directory / f"callgrind.{self.port}"
        self.process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={self.out}", find_redis_server(), "--port", str(self.port),
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}"
        # Under callgrind a reply can take long: no client timeout.
        self.client = redis.Redis.from_url(self.url, socket_timeout=None)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.process.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def on(self) -> None:
        """Start counting."""
        self._control("-i", "on")

    def total(self) -> int:
        """Stop counting, dump, and return the instructions counted."""
        self._control("-i", "off")
        self._control("-d")
        total = 0
        for dump in self.out.parent.glob(self.out.name + "*"):
            for line in dump.read_text().splitlines():
                if line.startswith(("totals:", "summary:")):
                    total = max(total, int(line.split()[1]))
        return total

    def stop(self) -> None:
        """Shut the server down."""
        with suppress(redis.ConnectionError):
            self.client.shutdown(nosave=True)
        self.process.wait(timeout=120)


@contextmanager
def callgrind() -> Iterator[Callgrind]:
    """A :class:`Callgrind` server for one measurement."""
    with tempfile.TemporaryDirectory(prefix="pyqueue-callgrind-") as directory:
        server = Callgrind(Path(directory))
        try:
            yield server
        finally:
            server.stop()


def workers(peer: str, processes: int, jobs: int, concurrency: int = 100) -> str:
    """One ``workers`` row: instructions per job of P processes of ``peer``."""
    with callgrind() as server:
        name = "instructions"
        with Queue(name, connection=server.url) as queue:
            preload(queue, jobs)
            queue.pause()
            before = len(server.client.client_list())
            procs = start_workers(peer, server.url, name, processes, concurrency)
            try:
                # Each worker process holds at least two connections once up.
                deadline = time.monotonic() + 120
                while len(server.client.client_list()) < before + 2 * processes:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the workers did not connect")
                    time.sleep(0.2)
                time.sleep(3)  # let them reach their blocking wait
                server.client.config_resetstat()
                server.on()
                queue.resume()
                while int(server.client.zcard(f"bull:{name}:completed")) < jobs:
                    time.sleep(0.2)
                total = server.total()
                stats = server.client.info("commandstats")
            finally:
                stop_workers(procs)
    calls = sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0))
                for c in ("fcall", "evalsha", "eval"))
    lrem = int(stats.get("cmdstat_lrem", {}).get("calls", 0))
    return (f"| {peer} | {processes} | {total / jobs:,.0f} | {jobs / max(calls, 1):.1f} "
            f"| {lrem / jobs:.2f} |")


def adds(peer: str, inflight: int, jobs: int) -> str:
    """One ``adds`` row: instructions per add."""
    with callgrind() as server:
        if peer == "pyqueue":
            asyncio.run(_pyqueue_adds(server.url, jobs, inflight, server.on))
        else:
            _bullmq_adds(server.url, jobs, inflight, server.on)
        total = server.total()
    return f"| {peer} | {inflight} | {total / jobs:,.0f} |"


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table of Redis instructions per job or per add."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("what", choices=("workers", "adds"))
    parser.add_argument("--processes", default="2,12", help="workers: process counts")
    parser.add_argument("--inflight", default="1,50", help="adds: adds in flight")
    parser.add_argument("--jobs", type=int, default=12000)
    parser.add_argument("--peers", default="pyqueue,bullmq")
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            print(f"{tool} is not on PATH (apt-get install valgrind)", file=sys.stderr)
            return 2
    peers = args.peers.split(",")
    why = node_available()
    if "bullmq" in peers and why is not None:
        print(f"BullMQ skipped: {why}", file=sys.stderr)
        peers.remove("bullmq")
    if args.what == "workers":
        print(f"Redis instructions per job, {args.jobs} no-op jobs, concurrency 100 "
              "per process, Redis under callgrind\n")
        print("| peer | processes | instructions/job | jobs per script call | LREM per job |")
        print("| --- | ---: | ---: | ---: | ---: |")
        runs: list[tuple[Callable[[str, int, int], str], int]] = [
            (workers, int(p)) for p in args.processes.split(",")]
    else:
        print(f"Redis instructions per add, {args.jobs} adds after a warm-up, "
              "Redis under callgrind\n")
        print("| peer | in flight | instructions/add |")
        print("| --- | ---: | ---: |")
        runs = [(adds, int(n)) for n in args.inflight.split(",")]
    for measure, size in runs:
        for peer in peers:
            print(measure(peer, size, args.jobs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
