"""``Worker.run()``'s process life: start (waiting for Redis with backoff), run until
SIGINT/SIGTERM, then shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

from ..errors import ConfigurationError, RedisConnectionError

if TYPE_CHECKING:
    from ._worker import Worker

logger = logging.getLogger("pyqueue.worker")

#: First and longest pause, in seconds, between attempts to start while Redis is down.
START_BACKOFF = (0.5, 10.0)


async def run_until_signal(worker: Worker) -> None:
    """Run ``worker`` until the first SIGINT/SIGTERM (a graceful close) or until
    it closes by itself (burst mode); a second signal forces the close."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0
    forced: list[asyncio.Future[None]] = []

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            stop.set()
        else:
            forced.append(asyncio.ensure_future(worker.close(force=True)))

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread
            pass
    try:
        if await start_with_retry(worker, stop):
            waiter = asyncio.ensure_future(stop.wait())
            closed = asyncio.ensure_future(worker.wait_closed())
            await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            closed.cancel()
        await worker.close()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def start_with_retry(worker: Worker, stop: asyncio.Event) -> bool:
    """Start ``worker``; while Redis cannot be reached, log and retry with a
    bounded exponential backoff. False if ``stop`` was set first."""
    pause, longest = START_BACKOFF
    attempt = 0
    while not stop.is_set():
        try:
            await worker.start()  # subclasses may override start() without arguments
            return True
        except RedisConnectionError as exc:
            attempt += 1
            logger.warning("worker %s: cannot reach Redis (%s); retrying in %.1fs "
                           "(attempt %d)", worker.name, exc, pause, attempt)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
        pause = min(pause * 2, longest)
    return False


def run_blocking(worker: Worker, burst: bool) -> None:
    """``Worker.run``: refused inside a running event loop, else one
    ``asyncio.run`` until a signal (or, with ``burst``, until idle)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ConfigurationError(
            "Worker.run() blocks and cannot be called inside a running event loop; "
            "use 'await worker.start()' (and 'await worker.close()') or "
            "'async with Worker(...) as worker:' instead")
    if burst:
        worker._rt.fetch.burst = True
    asyncio.run(run_until_signal(worker))
