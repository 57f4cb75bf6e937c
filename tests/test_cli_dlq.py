"""``pyqueue dlq list|replay|purge QUEUE`` against the test server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from pyqueue import Queue, UnrecoverableError
from pyqueue._cli_dlq import since_value
from pyqueue.cli import main
from pyqueue.testing import run_until_idle_async


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture
def failed(redis_url: str, queue_name: str) -> Iterator[Queue]:
    """A queue with a dead-letter queue holding 3 entries: welcome x2 (550), reset (421)."""
    with Queue(queue_name, connection=redis_url) as q:
        q.set_dead_letter_queue(f"{queue_name}-dead")
        for name in ("welcome", "reset", "welcome"):
            q.add(name, {"to": f"{name}@example.com"})

        async def boom(job: Any) -> None:
            raise UnrecoverableError("421 later" if job.name == "reset" else "550 no mailbox")

        asyncio.run(run_until_idle_async(queue_name, boom, connection=redis_url,
                                         raise_on_failure=False, timeout=20))
        yield q


def test_list_shows_entries_oldest_first(failed: Queue, redis_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dlq", "list", failed.name, "--redis", redis_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["welcome", "reset", "welcome"]
    assert lines[0].split("\t")[1] == f"{failed.name}:1"
    assert lines[0].endswith("unrecoverable\t550 no mailbox")
    assert run(["dlq", "list", failed.name, "--limit", "1", "--redis", redis_url]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert run(["dlq", "list", failed.name, "--limit", "0", "--redis", redis_url]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert run(["dlq", "list", failed.name, "--json", "--name", "reset", "--redis",
                redis_url]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["data"] == {"to": "reset@example.com"} and entry["queue"] == failed.name


def test_replay_dry_run_writes_nothing_then_replays(failed: Queue, redis_url: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--redis", redis_url]
    assert run(["dlq", "replay", failed.name, "--failed-reason", "550", "--dry-run",
                *base]) == 0
    captured = capsys.readouterr()
    assert "would replay 2" in captured.err and len(captured.out.splitlines()) == 2
    assert len(failed.get_dead_letters()) == 3
    assert failed.get_job_counts("waiting")["waiting"] == 0

    assert run(["dlq", "replay", failed.name, "--failed-reason", "550", "--limit", "1",
                "--json", *base]) == 0
    (new_id,) = json.loads(capsys.readouterr().out)
    assert failed.get_job_state(new_id) == "waiting"
    assert run(["dlq", "replay", failed.name, "--rate", "10", *base]) == 0
    assert "replayed 2 dead letter(s)" in capsys.readouterr().out
    assert failed.get_job_counts("waiting", "delayed") == {"waiting": 2, "delayed": 1}
    assert run(["dlq", "replay", failed.name, *base]) == 0
    assert "nothing to replay" in capsys.readouterr().out


def test_purge_with_filters_and_dry_run(failed: Queue, redis_url: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--redis", redis_url]
    assert run(["dlq", "purge", failed.name, "--name", "reset", "--dry-run", *base]) == 0
    assert "would purge 1" in capsys.readouterr().err
    assert run(["dlq", "purge", failed.name, "--name", "reset", *base]) == 0
    assert "purged 1" in capsys.readouterr().out
    # the dead-letter queue itself works as QUEUE too
    assert run(["dlq", "purge", f"{failed.name}-dead", "--since", "1h", *base]) == 0
    assert "purged 2" in capsys.readouterr().out


def test_a_queue_without_dead_letters_is_one_line_and_status_1(
        redis_url: str, queue_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dlq", "replay", queue_name, "--redis", redis_url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no dead-letter queue" in err


def test_bad_since_is_a_usage_error(redis_url: str, queue_name: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dlq", "list", queue_name, "--since", "last tuesday", "--redis",
                redis_url]) == 2
    assert "duration ago" in capsys.readouterr().err
    assert since_value("90s") == timedelta(seconds=90)
    assert since_value("2h") == timedelta(hours=2)
    assert since_value("2026-12-01T10:00:00").year == 2026  # type: ignore[union-attr]
