"""The dashboard's actions over real HTTP, each checked by its effect in Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from pyqueue import Queue, Worker
from pyqueue.web import create_app

from .conftest import client, csrf_of


class Dash:
    """A served dashboard and a logged-in browser-like client (cookie + token)."""

    def __init__(self, serve: Any, redis_url: str, prefix: str, queue: str) -> None:
        self.served = serve(create_app(redis_url, prefix=prefix))
        self.http = client(self.served.url)
        self.token = csrf_of(self.http.get(f"/queues/{queue}").text)

    def post(self, path: str, **data: Any) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": self.token, **data})


def _failed_job(queue: Queue, redis_url: str, prefix: str, job_id: str) -> None:
    queue.add("boom", {}, job_id=job_id)

    async def fail(job: Any) -> None:
        raise RuntimeError("boom")

    async def run() -> None:
        worker = Worker(queue.name, fail, connection=redis_url, prefix=prefix, autorun=False)
        await worker.start()
        await _until(lambda: queue.get_job_state(job_id) == "failed")
        await worker.close()

    asyncio.run(run())


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_job_actions_retry_promote_remove(serve: Any, make_queue: Any, redis_url: str,
                                          prefix: str) -> None:
    queue = make_queue("q")
    _failed_job(queue, redis_url, prefix, "f1")
    queue.add("later", {}, job_id="d1", delay=3600)
    queue.add("plain", {}, job_id="w1")
    dash = Dash(serve, redis_url, prefix, "q")
    retried = dash.post("/queues/q/jobs/f1", action="retry")
    assert retried.status_code == 303 and retried.headers["location"] == \
        "/queues/q/jobs/f1?done=retried"
    assert queue.get_job_state("f1") == "waiting"
    assert "Job moved back to waiting." in dash.http.get(retried.headers["location"]).text
    assert dash.post("/queues/q/jobs/d1", action="promote").status_code == 303
    assert queue.get_job_state("d1") == "waiting"
    removed = dash.post("/queues/q/jobs/w1", action="remove")
    assert removed.headers["location"] == "/queues/q?done=removed"
    assert queue.get_job("w1") is None
    not_retryable = dash.post("/queues/q/jobs/d1", action="retry")
    assert not_retryable.status_code == 409 and "only failed or completed" in \
        not_retryable.text
    assert dash.post("/queues/q/jobs/nope", action="remove").status_code == 404
    assert dash.post("/queues/q/jobs/d1", action="explode").status_code == 400
    dash.http.close()


async def test_cancel_a_running_job_and_remove_refuses_it(serve: Any, make_queue: Any,
                                                         redis_url: str, prefix: str) -> None:
    queue = make_queue("q")
    queue.add("long", {}, job_id="r1")
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def long(job: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = Worker("q", long, connection=redis_url, prefix=prefix, autorun=False)
    await worker.start()
    try:
        await asyncio.wait_for(started.wait(), 10)
        dash = Dash(serve, redis_url, prefix, "q")
        page = await asyncio.to_thread(dash.http.get, "/queues/q/jobs/r1")
        assert "running" in page.text and '"cancel"' in page.text
        locked = await asyncio.to_thread(dash.post, "/queues/q/jobs/r1", action="remove")
        assert locked.headers["location"].endswith("done=locked")
        response = await asyncio.to_thread(dash.post, "/queues/q/jobs/r1", action="cancel")
        assert response.headers["location"].endswith("done=cancel-requested")
        await asyncio.wait_for(cancelled.wait(), 10)
        await _until(lambda: queue.get_job_state("r1") == "failed")
        job = queue.get_job("r1")
        assert job is not None and job.failed_reason == "cancelled from the dashboard"
        dash.http.close()
    finally:
        await worker.close()


def test_queue_actions(serve: Any, make_queue: Any, redis_url: str, prefix: str) -> None:
    queue = make_queue("q")
    _failed_job(queue, redis_url, prefix, "f1")
    for i in range(3):
        queue.add("later", {}, job_id=f"d{i}", delay=3600)
    dash = Dash(serve, redis_url, prefix, "q")
    assert dash.post("/queues/q/actions/pause").headers["location"] == "/queues/q?done=paused"
    assert queue.is_paused()
    dash.post("/queues/q/actions/resume")
    assert not queue.is_paused()
    assert dash.post("/queues/q/actions/retry-all", state="failed").headers["location"] \
        .endswith("done=retried-all&n=1")
    assert queue.get_job_state("f1") == "waiting"
    assert dash.post("/queues/q/actions/promote-all").headers["location"] \
        .endswith("done=promoted-all&n=3")
    assert queue.get_job_counts("waiting", "delayed") == {"waiting": 4, "delayed": 0}
    cleaned = dash.post("/queues/q/actions/clean", state="waiting", grace="0", limit="2")
    assert cleaned.headers["location"].endswith("done=cleaned&n=2")
    assert queue.get_job_counts("waiting") == {"waiting": 2}
    queue.add("later", {}, job_id="d9", delay=3600)
    dash.post("/queues/q/actions/drain")
    assert queue.get_job_counts("waiting", "delayed") == {"waiting": 0, "delayed": 1}
    dash.post("/queues/q/actions/drain", delayed="1")
    assert queue.get_job_counts("delayed") == {"delayed": 0}
    bad = dash.post("/queues/q/actions/clean", state="waiting", grace="soon")
    assert bad.status_code == 400 and "grace must be a number" in bad.text
    assert dash.post("/queues/q/actions/explode").status_code == 404
    dash.http.close()


def test_limits_are_saved_and_shown(serve: Any, make_queue: Any, redis_url: str,
                                    prefix: str) -> None:
    queue = make_queue("q")
    queue.add("x", {})
    dash = Dash(serve, redis_url, prefix, "q")
    assert dash.post("/queues/q/actions/limits", concurrency="4", max="10",
                     duration="2").status_code == 303
    page = dash.http.get("/queues/q").text
    assert "global concurrency: 4" in page and "rate limit: 10 per 2.0 s" in page
    assert dash.post("/queues/q/actions/limits", max="10").status_code == 400
    dash.post("/queues/q/actions/limits", concurrency="0", max="0")
    assert "global concurrency" not in dash.http.get("/queues/q").text.split("Queue actions")[0]
    dash.http.close()


def test_obliterate_needs_the_typed_name(serve: Any, make_queue: Any, redis_url: str,
                                         prefix: str) -> None:
    queue = make_queue("doomed")
    queue.add("x", {}, job_id="j1")
    dash = Dash(serve, redis_url, prefix, "doomed")
    wrong = dash.post("/queues/doomed/actions/obliterate", confirm="Doomed")
    assert wrong.status_code == 400 and queue.get_job("j1") is not None
    done = dash.post("/queues/doomed/actions/obliterate", confirm="doomed")
    assert done.headers["location"] == "/?done=obliterated"
    assert queue.get_job("j1") is None
    overview = dash.http.get(done.headers["location"]).text
    assert "Queue obliterated." in overview and 'data-queue="doomed"' not in overview
    dash.http.close()


def test_bulk_actions_on_selected_jobs(serve: Any, make_queue: Any, redis_url: str,
                                       prefix: str) -> None:
    queue = make_queue("q")
    for i in range(5):
        queue.add("x", {}, job_id=f"w{i}")
    dash = Dash(serve, redis_url, prefix, "q")
    response = dash.http.post("/queues/q/actions/bulk", data={
        "csrf_token": dash.token, "op": "remove", "state": "waiting",
        "ids": ["w0", "w2", "w4", "missing"]})
    assert response.headers["location"] == "/queues/q?state=waiting&done=bulk&n=3"
    assert sorted(j.id for j in queue.get_jobs("waiting")) == ["w1", "w3"]
    none = dash.post("/queues/q/actions/bulk", op="remove")
    assert none.status_code == 400
    dash.http.close()


def test_groups_tab_counts_and_sets_limits(serve: Any, make_queue: Any, redis_url: str,
                                           prefix: str) -> None:
    queue = make_queue("q")
    for i in range(3):
        queue.add("send", {"n": i}, group="gmail.com")
    queue.add("send", {}, group="yahoo.com")
    dash = Dash(serve, redis_url, prefix, "q")
    page = dash.http.get("/queues/q?state=groups").text
    assert "<tr><td>gmail.com</td><td class=\"num\">3</td><td class=\"num\">0</td></tr>" in page
    done = dash.post("/queues/q/actions/group-limits", group="gmail.com", concurrency="1",
                     max="5", duration="60")
    assert done.headers["location"] == "/queues/q?state=groups&done=limits"

    async def run() -> int:
        started: list[str] = []
        release = asyncio.Event()

        async def hold(job: Any) -> None:
            started.append(job.id)
            await release.wait()

        worker = Worker("q", hold, connection=redis_url, prefix=prefix, autorun=False,
                        concurrency=5)
        await worker.start()
        await _until(lambda: len(started) >= 2)  # one gmail.com job, one yahoo.com
        counts = queue.get_group_counts()
        release.set()
        await worker.close()
        return counts["gmail.com"]["active"]

    assert asyncio.run(run()) == 1  # the limit set in the dashboard holds
    bad = dash.post("/queues/q/actions/group-limits", group="*", concurrency="1")
    assert bad.status_code == 409  # pyqueue's own validation, said on the page
    dash.http.close()


def test_change_priority_and_delay_from_the_job_page(serve: Any, make_queue: Any,
                                                      redis_url: str, prefix: str) -> None:
    queue = make_queue("q")
    queue.add("a", {}, job_id="first", priority=5)
    queue.add("b", {}, job_id="second", priority=5)
    queue.add("later", {}, job_id="d1", delay=3600)
    dash = Dash(serve, redis_url, prefix, "q")
    page = dash.http.get("/queues/q/jobs/d1").text
    assert "Set priority" in page and "Set delay" in page and "in 59 min" in page
    done = dash.post("/queues/q/jobs/second", action="priority", priority="1")
    assert done.headers["location"] == "/queues/q/jobs/second?done=priority"
    assert [j.id for j in queue.get_jobs("prioritized", asc=True)] == ["second", "first"]
    assert dash.post("/queues/q/jobs/d1", action="delay", delay="120").status_code == 303
    assert "in 1 min" in dash.http.get("/queues/q/jobs/d1").text
    wrong = dash.post("/queues/q/jobs/first", action="delay", delay="5")
    assert wrong.status_code == 409 and "change_delay" in wrong.text
    bad = dash.post("/queues/q/jobs/first", action="priority", priority="9999999")
    assert bad.status_code == 409 and "priority must be" in bad.text
    dash.http.close()
