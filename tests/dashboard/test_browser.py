"""The dashboard in a real browser (Debian's chromium, driven by Playwright): navigation,
clicking actions and checking Redis, the select-all script under the CSP, pagination, and
XSS payloads that must render as text without ever running (no dialog may open).

With ``PYQUEUE_SCREENSHOTS=1`` the pages are also saved to ``docs/img/`` (the
pictures in docs/dashboard.md and the README).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pyqueue import Queue, Worker
from pyqueue.web import create_app

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SHOTS = os.environ.get("PYQUEUE_SCREENSHOTS") == "1"
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>"\'><svg onload=alert(2)>'


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page that records every dialog (none may ever open)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    tab.dialogs = []
    tab.console_errors = []

    def on_dialog(dialog: Any) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.on("console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None)
    tab.set_default_timeout(10_000)
    try:
        yield tab
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    if SHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / f"{name}.png"), full_page=False)


def _fail_jobs(queue: Queue, redis_url: str, prefix: str, count: int, reason: str) -> None:
    async def fail(job: Any) -> None:
        await job.log(f"log line: {reason}")
        raise RuntimeError(reason)

    async def run() -> None:
        worker = Worker(queue.name, fail, connection=redis_url, prefix=prefix, autorun=False,
                        concurrency=5)
        await worker.start()
        deadline = time.monotonic() + 15
        while queue.get_job_counts("failed")["failed"] < count:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await worker.close()

    # Playwright's sync API keeps an event loop running in this thread: the
    # worker gets a thread (and a loop) of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result(timeout=30)


def test_xss_payloads_never_run(page: Any, serve: Any, make_queue: Any, redis_url: str,
                                prefix: str) -> None:
    evil = make_queue('<img src=x onerror=alert("q")>')
    evil.add(XSS, {"html": XSS, XSS: XSS}, job_id="evil", attempts=1)
    _fail_jobs(evil, redis_url, prefix, 1, XSS)
    evil.upsert_job_scheduler("sched", every=3600, template={"name": XSS, "data": {"x": XSS}})
    served = serve(create_app(redis_url, prefix=prefix))
    page.goto(served.url + "/")
    page.click("a.queue-link")
    for tab in ("latest", "schedulers", "groups", "waiting"):
        page.click(f"nav.tabs a:text-is('{tab}')")
    page.click("nav.tabs a:has-text('failed')")
    page.click("a.job-link")
    assert page.inner_text("strong.job-name") == XSS
    assert XSS in page.inner_text("pre.failed-reason")
    assert XSS in page.inner_text("pre.logs")
    page.goto(f"{served.url}/search?q=onerror&kind=data&state=failed&queue="
              + quote(evil.name, safe=""))
    assert "1 match(es)" in page.inner_text("p.scanned")
    page.goto(served.url + "/workers")
    for kind in ("id", "name", "data"):  # the search text is reflected: as text
        page.goto(f"{served.url}/search?kind={kind}&state=failed&q=" + quote(XSS))
        assert page.input_value("input[name=q]") == XSS
    page.goto(served.url + "/queues/" + quote(XSS, safe=""))  # a 404 page
    assert page.dialogs == []
    assert page.evaluate("document.querySelectorAll('img[src=x], svg').length") == 0


def test_click_through_and_act(page: Any, serve: Any, make_queue: Any, redis_url: str,
                               prefix: str) -> None:
    emails = make_queue("emails")
    emails.add("bounce", {"to": "bad@example.com"}, job_id="bounce-1")
    _fail_jobs(emails, redis_url, prefix, 1, "550 mailbox unavailable")
    emails.add_bulk([{"name": "welcome", "data": {"to": f"user{i}@example.com"}}
                     for i in range(4)])
    emails.add("reminder", {"to": "later@example.com"}, delay=3600, job_id="remind-1")
    make_queue("reports").add("nightly", {"day": "2026-12-05"})
    served = serve(create_app(redis_url, prefix=prefix))
    page.goto(served.url + "/")
    shot(page, "dashboard-overview")
    page.click("a.queue-link:text-is('emails')")
    shot(page, "dashboard-queue")
    page.click("nav.tabs a:has-text('failed')")
    page.click("a.job-link:text-is('bounce-1')")
    assert "550 mailbox unavailable" in page.inner_text("pre.failed-reason")
    shot(page, "dashboard-job")
    page.click("button:text-is('Retry')")
    assert "Job moved back to waiting." in page.inner_text("p.flash")
    assert emails.get_job_state("bounce-1") == "waiting"
    page.click("p.crumbs a")
    page.click("nav.tabs a:has-text('delayed')")
    page.click("a.job-link:text-is('remind-1')")
    page.click("button:text-is('Promote')")
    assert emails.get_job_state("remind-1") == "waiting"
    # Bulk: tick "all on this page" (the static script, allowed by the CSP), remove.
    page.click("p.crumbs a")
    page.click("nav.tabs a:has-text('waiting')")
    page.check("input.select-all")
    assert page.evaluate("[...document.querySelectorAll('input[name=ids]')]"
                         ".every(c => c.checked)")
    page.select_option("select[name=op]", "remove")
    page.click("button:text-is('Apply to selected')")
    assert "6 job(s) done." in page.inner_text("p.flash")
    assert emails.get_job_counts("waiting")["waiting"] == 0
    page.click("summary:text-is('Queue actions')")
    page.click("button:text-is('Pause')")
    assert emails.is_paused()
    assert page.dialogs == [] and page.console_errors == []


def test_pagination_of_a_large_state(page: Any, serve: Any, make_queue: Any, redis_url: str,
                                     prefix: str) -> None:
    queue = make_queue("big")
    queue.add_bulk([{"name": "job", "data": {"n": i}} for i in range(500)])
    served = serve(create_app(redis_url, prefix=prefix))
    page.goto(served.url + "/queues/big?state=waiting")
    page.click(".sizes a:text-is('10')")
    assert page.locator("tr[data-job-id]").count() == 10
    page.click("a[rel=next]")
    assert page.locator("tr[data-job-id]").first.get_attribute("data-job-id") == "490"
    page.fill("input[name=page]", "50")
    page.press("input[name=page]", "Enter")
    page.wait_for_url("**page=50**")
    assert "page 50 of 50 (500 jobs)" in page.inner_text("nav.pager")
    assert page.locator("tr[data-job-id]").last.get_attribute("data-job-id") == "1"


def test_read_only_in_the_browser(page: Any, serve: Any, make_queue: Any, redis_url: str,
                                  prefix: str) -> None:
    queue = make_queue("q")
    queue.add("x", {}, job_id="j1")
    served = serve(create_app(redis_url, prefix=prefix, read_only=True))
    page.goto(served.url + "/queues/q/jobs/j1")
    assert page.locator("form[method=post]").count() == 0
    assert page.inner_text("span.badge.ro") == "read-only"
