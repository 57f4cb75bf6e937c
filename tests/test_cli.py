"""The ``pyqueue`` command line: unknown queues, bad states, bad worker targets.

Commands run through ``main(argv)`` against the test server (status and
stderr checked), or in a subprocess where a traceback could leak.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from pyqueue import Queue
from pyqueue.cli import main
from pyqueue.testing import assert_enqueued, assert_not_enqueued


def run(argv: list[str]) -> int:
    """``main(argv)``'s exit status, including argparse's own exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture
def known(redis_url: str, queue_name: str) -> str:
    """A queue that exists (one failed-free waiting job)."""
    with Queue(queue_name, connection=redis_url) as q:
        q.add("x", {})
    return queue_name


def _keys(client: redis.Redis, name: str) -> list[bytes]:
    return list(client.scan_iter(match=f"bull:{name}:*"))


@pytest.mark.parametrize("command", [["info"], ["jobs", "-", "failed"], ["retry"],
                                     ["health"]])
def test_unknown_queue_is_named_with_the_known_ones_and_nothing_is_written(
        command: list[str], redis_url: str, redis_client: redis.Redis, known: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    typo = f"{known}-typo"
    argv = [command[0], typo, *command[2:], "--redis", redis_url]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert f"no queue named '{typo}'" in err
    assert known in err  # in the "known:" list
    assert _keys(redis_client, typo) == []


def test_info_and_jobs_of_a_known_queue(redis_url: str, known: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["info", known, "--redis", redis_url]) == 0
    out = capsys.readouterr().out
    assert known in out and "waiting" in out
    assert run(["jobs", known, "wait", "--redis", redis_url]) == 0
    assert "\tx\t" in capsys.readouterr().out
    assert run(["jobs", known, "waiting-children", "--redis", redis_url]) == 0


def test_info_lists_a_queue_known_only_from_its_workers(
        redis_url: str, redis_client: redis.Redis, queue_name: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    redis_client.zadd(f"bull:{queue_name}:pq:workers", {"w1": 0})
    try:
        assert run(["info", "--redis", redis_url]) == 0
        assert queue_name in capsys.readouterr().out
        assert run(["health", queue_name, "--redis", redis_url]) == 1  # known, not healthy
    finally:
        redis_client.delete(f"bull:{queue_name}:pq:workers")


def test_jobs_with_an_unknown_state_is_a_usage_error(
        redis_url: str, known: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["jobs", known, "bogus", "--redis", redis_url]) == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["nosuch_module_xyz:thing", "json:nosuch", "json"])
def test_worker_with_a_bad_target_prints_one_line(target: str, redis_url: str,
                                                  tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pyqueue.cli", "worker", target,
                           "--queue", "q", "--redis", redis_url],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyqueue worker: "), done.stderr


def test_worker_module_with_a_broken_import_shows_where(redis_url: str,
                                                         tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("import nosuch_dependency_xyz\n")
    done = subprocess.run([sys.executable, "-m", "pyqueue.cli", "worker", "broken_app:w",
                           "--queue", "q", "--redis", redis_url],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert "nosuch_dependency_xyz" in done.stderr and "broken_app.py" in done.stderr


def test_worker_module_importing_a_missing_module_with_a_similar_name_shows_where(
        redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "appmod.py").write_text("import app\n")  # "appmod" starts with "app"
    done = subprocess.run([sys.executable, "-m", "pyqueue.cli", "worker", "appmod:w",
                           "--queue", "q", "--redis", redis_url],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert "appmod.py" in done.stderr, done.stderr


def test_read_only_commands_leave_a_bullmq_queue_untouched(
        redis_url: str, redis_client: redis.Redis, queue_name: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    meta = f"bull:{queue_name}:meta"
    redis_client.hset(meta, mapping={"opts.maxLenEvents": 10000, "version": "bullmq:6.7.0"})
    before = {k: redis_client.dump(k) for k in _keys(redis_client, queue_name)}
    for argv in (["info", queue_name], ["info"], ["jobs", queue_name, "failed"],
                 ["jobs", queue_name, "waiting", "--json"], ["health", queue_name]):
        run([*argv, "--redis", redis_url])
    capsys.readouterr()
    assert {k: redis_client.dump(k) for k in _keys(redis_client, queue_name)} == before


def test_worker_typo_starts_no_embedded_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "PYQUEUE_REDIS_URL")}
    env["PYQUEUE_HOME"] = str(tmp_path / "home")
    try:
        done = subprocess.run([sys.executable, "-m", "pyqueue.cli", "worker", "nosuch_xyz:w",
                               "--queue", "q"], capture_output=True, text=True, timeout=60,
                              cwd=tmp_path, env=env)
        assert done.returncode == 2, done.stderr
        assert not (tmp_path / "home").exists()
    finally:
        if (tmp_path / "home").exists():  # the bug is back: stop what it started
            subprocess.run([sys.executable, "-m", "pyqueue.cli", "embedded", "--stop"],
                           env=env, timeout=60, check=False)


def test_worker_burst_processes_the_waiting_jobs_and_exits(redis_url: str,
                                                          queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        ids = [q.add("resize", {"path": "/img/a.png", "width": w}).id for w in (10, 20, 30)]
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "pyqueue.cli", "worker", "examples.worker_module:resize",
         "--queue", queue_name, "--redis", redis_url, "--burst"],
        cwd=root, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    with Queue(queue_name, connection=redis_url) as q:
        finished = assert_enqueued(q, "resize", states=["completed"], count=3)
        assert sorted(job.id for job in finished) == sorted(ids)
        assert_not_enqueued(q)
    assert done.stderr.count("completed") >= 3  # one INFO line per job


def test_queue_methods_on_a_queue_that_does_not_exist_create_nothing(
        redis_url: str, redis_client: redis.Redis, queue_name: str) -> None:
    with Queue(queue_name, connection=redis_url) as q:
        q.retry_jobs()
        q.retry_jobs(state="completed")
        q.promote_jobs()
        q.get_job_counts()
        q.get_jobs(["waiting", "failed"])
        q.clean(0, state="failed")
        q.drain(delayed=True)
        q.is_paused()
        assert q.get_job("nope") is None
        assert q.get_job_schedulers() == []
        assert _keys(redis_client, queue_name) == []
        q.add("first", {})  # the first add registers the queue, as BullMQ's does
        meta = redis_client.hgetall(f"bull:{queue_name}:meta")
        assert meta[b"version"].startswith(b"pyqueue:")


async def test_health_host_filter_checks_only_this_hosts_workers(
        redis_url: str, queue_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import json
    import socket

    from _worker_helpers import wait_for

    from pyqueue import Worker

    async def noop(job: object) -> None:
        return None

    async with Worker(queue_name, noop, connection=redis_url, drain_delay=0.5):
        async def health(*extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
            capsys.readouterr()
            rc = await asyncio.to_thread(run, ["health", queue_name, "--json", "--redis",
                                               redis_url, *extra])
            return rc, json.loads(capsys.readouterr().out)

        async def healthy() -> bool:
            return (await health())[0] == 0

        await wait_for(healthy, 15, "the first heartbeat", interval=0.1)
        rc, report = await health("--host", socket.gethostname())
        assert rc == 0 and len(report["workers"]) == 1
        rc, report = await health("--host", "another-pod")
        assert rc == 1 and report["workers"] == []


def test_info_of_every_queue_skips_a_damaged_one_and_says_so(
        redis_url: str, redis_client: redis.Redis, queue_name: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    damaged = f"{queue_name}x"
    redis_client.zadd(f"bull:{queue_name}:pq:workers", {"w1": 0})
    redis_client.set(f"bull:{damaged}:meta", "not a hash")  # WRONGTYPE for this queue
    redis_client.zadd(f"bull:{damaged}:pq:workers", {"w1": 0})
    try:
        assert run(["info", "--redis", redis_url]) == 0
        captured = capsys.readouterr()
        assert queue_name in captured.out
        assert f"queue {damaged!r} cannot be read" in captured.err
        assert run(["info", damaged, "--redis", redis_url]) == 1  # asked for by name: fails
    finally:
        redis_client.delete(f"bull:{queue_name}:pq:workers", f"bull:{damaged}:meta",
                            f"bull:{damaged}:pq:workers")
