"""Fault injection: a server that accepts connections and never answers the
handshake (a blackholed link behind a proxy or load balancer that still
completes TCP).

The issue: a worker whose URL has a password (so every new connection
starts with AUTH) stayed "reconnecting" 45 s after the link healed, while
one with a plain URL recovered in 7.5 s: its handshake had no timeout, so the
connection it opened during the outage waited forever. Here the proxy holds
every connection accepted while blackholed forever (even after the heal, as
if those packets were lost), so a worker recovers only if it gives up on
such a handshake by itself.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from harness import REAL_TIME, Scenario, recovery_bound, wait_until
from proxy import FaultProxy

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

LOCK = 1.0
STALLED = 0.5
#: pyqueue's connect timeout for URLs (connection.py), which also bounds the handshake.
HANDSHAKE_TIMEOUT = 5.0
#: At the heal a worker may have just begun a handshake on a held connection:
#: that one times out first, then the reconnect backoff, then the usual bound.
BOUND = recovery_bound(LOCK, STALLED) + HANDSHAKE_TIMEOUT
PASSWORD = "hs-Secret-93kQ"
USER = "hsworker"


class SilentAcceptProxy(FaultProxy):
    """A :class:`FaultProxy` whose blackhole also swallows new connections for
    good: accepted, read, never connected upstream nor answered, even after
    ``heal()`` (only connections made after the heal reach Redis)."""

    held = 0

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        if self._flowing.is_set():
            await super()._handle(reader, writer)
            return
        self.held += 1
        self._writers.add(writer)
        try:
            while await reader.read(65536):
                pass
        except (OSError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


def handshake_errors(sc: Scenario, since: float, until: float) -> list[dict[str, Any]]:
    return [r for r in sc.records() if r["ev"] == "error" and since <= r["t"] <= until
            and "handshake" in r.get("msg", "")]


def test_worker_with_a_password_recovers_from_a_silent_handshake(scenario: Scenario) -> None:
    sc = scenario
    sc.client.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", "~*", "&*",
                              "+@all")
    port = int(sc.url.rsplit(":", 1)[1].split("/")[0])
    proxy = SilentAcceptProxy(port).start()
    try:
        url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}/0"
        worker = sc.start_worker(url=url, lock_duration=LOCK, stalled_interval=STALLED,
                                 concurrency=2, duration=0.01)
        sc.wait_ready([worker])
        sc.add(20, data={"duration": 0.01})
        sc.wait_finished(30)

        proxy.blackhole()
        proxy.drop()  # the open connections die: every reconnect meets the silence
        down_at = REAL_TIME()
        # The outage: long enough for several handshakes to time out in turn.
        wait_until(lambda: len(handshake_errors(sc, down_at, REAL_TIME())) >= 2,
                   4 * (HANDSHAKE_TIMEOUT + 5.0), "handshake timeouts to be reported",
                   interval=0.1, on_timeout=sc.debug)
        time.sleep(2.0)  # the outage goes on a little (not synchronisation)
        proxy.heal()
        healed_at = REAL_TIME()
        assert proxy.held >= 2, proxy.held
        recovered = sc.wait_started_after(healed_at, [worker], BOUND + 10, feed=4,
                                          data={"duration": 0.05})
        sc.wait_finished(60)
        sc.check(allow_duplicates=True)
        errors = handshake_errors(sc, down_at, healed_at)
        print(f"\nCHAOS silent_handshake: recovery={max(recovered.values()):.2f} "
              f"held={proxy.held} handshake_errors={len(errors)} bound={BOUND}")
        assert max(recovered.values()) <= BOUND, recovered
        # Reported while it lasted (the worker did not just sit in a handshake),
        # and the error names the address, never the password.
        gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(errors)]
        assert all(gap <= HANDSHAKE_TIMEOUT + 5.0 + 2.0 for gap in gaps), gaps
        for record in sc.records():
            assert PASSWORD not in str(record), record
        assert PASSWORD not in worker.log()
        assert f"127.0.0.1:{proxy.port}" in errors[0]["msg"], errors[0]
    finally:
        proxy.close()
