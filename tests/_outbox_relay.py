"""A relay in a subprocess, for the outbox crash tests (not a test module).

    python tests/_outbox_relay.py DSN REDIS_URL MODE [BATCH_SIZE]

MODE ``hold-added``: after the first batch's Redis add and before its COMMIT,
print ``ADDED <ids JSON>`` and block (the test kills the process -9).
MODE ``hold-published``: after the first COMMIT, print ``PUBLISHED <ids JSON>``
and block. MODE ``drain``: publish until nothing is left, then print
``DONE <ids JSON>`` (every id this process published) and exit.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from pyqueue.outbox import Relay, RelayHooks


class Hold(RelayHooks):
    def __init__(self, point: str) -> None:
        self.point = point

    def _hold(self, word: str, ids: Sequence[int]) -> None:
        print(word, json.dumps(list(ids)), flush=True)
        sys.stdin.readline()  # blocks until the test kills this process

    def on_added(self, ids: Sequence[int]) -> None:
        if self.point == "added":
            self._hold("ADDED", ids)

    def on_published(self, ids: Sequence[int]) -> None:
        if self.point == "published":
            self._hold("PUBLISHED", ids)


class Record(RelayHooks):
    def __init__(self) -> None:
        self.ids: list[int] = []

    def on_published(self, ids: Sequence[int]) -> None:
        self.ids.extend(ids)


def main() -> None:
    dsn, url, mode = sys.argv[1:4]
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    record = Record()
    hooks: list[RelayHooks] = [record]
    if mode.startswith("hold-"):
        hooks.append(Hold(mode.removeprefix("hold-")))
    with Relay(dsn, connection=url, batch_size=batch, hooks=hooks) as relay:
        print("READY", flush=True)
        if mode == "drain":
            sys.stdin.readline()  # the test starts every relay, then says go
        relay.run_until_empty()
    print("DONE", json.dumps(record.ids), flush=True)


if __name__ == "__main__":
    main()
