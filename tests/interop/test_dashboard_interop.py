"""The dashboard shows a Node BullMQ queue beside a pyqueue one, and acts on BullMQ's jobs:
checked in a real browser and, for the effect, by BullMQ itself."""

from __future__ import annotations

from typing import Any

import pytest
from dashboard.conftest import (  # tests/ is on sys.path (pytest's rootdir import)
    CHROMIUM_NAMES,
    Served,
    client,
)
from dashboard.test_browser import shot

from pyqueue import Queue
from pyqueue.web import create_app

pytestmark = pytest.mark.interop


@pytest.fixture
def served_dashboard(redis_url: str, queue_name: str) -> Any:
    served = Served(create_app(redis_url, prefix=queue_name))
    yield served
    served.stop()


def test_a_bullmq_queue_beside_a_pyqueue_queue(bull: Any, redis_url: str, queue_name: str,
                                               served_dashboard: Served) -> None:
    prefix = queue_name  # a prefix of this test's own
    bull("add", queue="node-mail", prefix=prefix, jobs=[
        {"name": "welcome", "data": {"to": "ada@example.com", "fail": "smtp 421 try later"},
         "opts": {"jobId": "n1"}},
        {"name": "digest", "data": {"to": "bob@example.com"}, "opts": {"delay": 3_600_000}},
        {"name": "digest", "data": {"to": "cy@example.com"}, "opts": {"priority": 3}},
    ])
    bull("work", queue="node-mail", prefix=prefix, count=2)  # n1 fails, the prioritized one ends
    with Queue("py-mail", connection=redis_url, prefix=prefix) as queue:
        queue.add_bulk([{"name": "send", "data": {"n": i}} for i in range(3)])
    with client(served_dashboard.url) as http:
        overview = http.get("/").text
        job_page = http.get("/queues/node-mail/jobs/n1").text
    assert 'data-queue="node-mail"' in overview and 'data-queue="py-mail"' in overview
    assert "<td>bullmq</td>" in overview and "<td>pyqueue</td>" in overview
    assert "smtp 421 try later" in job_page and "ada@example.com" in job_page


def test_retry_a_bullmq_job_in_the_browser(bull: Any, redis_url: str, queue_name: str,
                                           served_dashboard: Served) -> None:
    import shutil

    chromium = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if chromium is None:
        pytest.skip("needs Debian's chromium (scripts/setup.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    prefix = queue_name
    bull("add", queue="node-mail", prefix=prefix, jobs=[
        {"name": "welcome", "data": {"to": "ada@example.com", "fail": "smtp 421 try later"},
         "opts": {"jobId": "n1"}},
        {"name": "digest", "data": {"to": "bob@example.com"}, "opts": {"jobId": "n2"}},
    ])
    bull("work", queue="node-mail", prefix=prefix, count=2)
    bull("add", queue="node-mail", prefix=prefix, jobs=[
        {"name": "digest", "data": {"to": f"user{i}@example.com"}} for i in range(3)])
    with Queue("py-mail", connection=redis_url, prefix=prefix) as queue:
        queue.add_bulk([{"name": "send", "data": {"n": i}} for i in range(4)])
        queue.add("report", {"day": "2026-12-05"}, delay=600)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 560})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(served_dashboard.url + "/")
            shot(page, "dashboard-bullmq-and-pyqueue")
            page.click("a.queue-link:text-is('node-mail')")
            page.click("nav.tabs a:has-text('failed')")
            page.click("a.job-link:text-is('n1')")
            assert "smtp 421 try later" in page.inner_text("pre.failed-reason")
            page.click("button:text-is('Retry')")
            assert "Job moved back to waiting." in page.inner_text("p.flash")
            assert dialogs == []
        finally:
            browser.close()
    assert bull("state", queue="node-mail", prefix=prefix, id="n1")["state"] == "waiting"


def test_a_running_bullmq_worker_is_listed(bull: Any, queue_name: str,
                                           served_dashboard: Served) -> None:
    import time
    from concurrent.futures import ThreadPoolExecutor

    prefix = queue_name
    bull("add", queue="node-work", prefix=prefix, jobs=[
        {"name": "slow", "data": {"sleepMs": 4000}, "opts": {"jobId": "s1"}}])
    with ThreadPoolExecutor(1) as pool, client(served_dashboard.url) as http:
        running = pool.submit(bull, "work", queue="node-work", prefix=prefix, count=1)
        deadline = time.monotonic() + 20
        while True:  # until BullMQ's worker connection shows up
            page = http.get("/workers").text
            if '<tr><td><a href="/queues/node-work">node-work</a></td>' in page:
                break
            assert time.monotonic() < deadline and not running.done(), page
            time.sleep(0.1)
        active = http.get("/queues/node-work?state=active").text
        assert 'data-job-id="s1"' in active
        assert "workers: 0" not in active  # BullMQ's worker counts (by its connection)
        assert running.result(timeout=30)["processed"]
