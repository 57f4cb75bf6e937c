"""The dashboard's pages over real HTTP (uvicorn) against the test Redis: what each page
shows, pagination that reads one window, redaction everywhere, search, workers, health."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from pyqueue import Worker
from pyqueue.web import create_app, pages, queries

from .conftest import client, csrf_of


def test_overview_lists_the_queues_with_counts_and_warnings(serve: Any, make_queue: Any,
                                                             redis_url: str,
                                                             prefix: str) -> None:
    emails, reports = make_queue("emails"), make_queue("reports")
    for i in range(3):
        emails.add("send", {"n": i})
    reports.add("build", {}, delay=60)
    reports.pause()
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        page = http.get("/")
    assert page.status_code == 200
    html = page.text
    row = re.search(r'<tr[^>]*data-queue="emails">(.*?)</tr>', html, re.S)
    assert row is not None
    assert 'href="/queues/emails?state=waiting">3<' in row.group(1)
    assert "3 job(s) waiting and no worker is consuming" in row.group(1)
    assert "pyqueue" in row.group(1)
    paused = re.search(r'<tr[^>]*data-queue="reports">(.*?)</tr>', html, re.S)
    assert paused is not None and "paused" in paused.group(1)
    assert 'href="/queues/reports?state=delayed">1<' in paused.group(1)


def test_queue_page_paginates_one_window(serve: Any, make_queue: Any, redis_url: str,
                                         prefix: str) -> None:
    queue = make_queue("big")
    queue.add_bulk([{"name": "job", "data": {"n": i}} for i in range(60)])
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        first = http.get("/queues/big", params={"state": "waiting", "size": 25})
        last = http.get("/queues/big", params={"state": "waiting", "size": 25, "page": 3})
        beyond = http.get("/queues/big", params={"state": "waiting", "size": 25, "page": 99})
    ids = re.findall(r'<tr data-job-id="([^"]+)"', first.text)
    assert ids == [str(n) for n in range(60, 35, -1)]  # newest first
    assert "page 1 of 3 (60 jobs)" in first.text
    assert re.findall(r'<tr data-job-id="([^"]+)"', last.text) == [str(n) for n in range(10, 0, -1)]
    assert "page 3 of 3" in beyond.text  # clamped to the last page


def test_job_page_shows_everything_about_a_failed_job(serve: Any, make_queue: Any,
                                                      redis_url: str, prefix: str,
                                                      queue_name: str) -> None:
    queue = make_queue(queue_name)
    queue.add("charge", {"order": 7}, job_id="order-7", attempts=2)

    async def work() -> None:
        async def fail(job: Any) -> None:
            await job.log("charging order 7")
            await job.update_progress(40)
            raise RuntimeError("card declined")

        worker = Worker(queue_name, fail, connection=redis_url, prefix=prefix, autorun=False)
        await worker.start()
        deadline = time.monotonic() + 10
        while queue.get_job_state("order-7") != "failed":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await worker.close()

    asyncio.run(work())
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        page = http.get(f"/queues/{queue_name}/jobs/order-7").text
    assert "card declined" in page and "RuntimeError" in page  # reason and stack trace
    assert "charging order 7" in page  # logs
    assert "&#34;order&#34;: 7" in page  # the data, pretty JSON
    assert "2 made, 2 started, 2 allowed" in page
    assert "state-failed" in page
    assert re.search(r"<th>finished</th>", page)


def test_redact_applies_to_lists_job_page_and_search(serve: Any, make_queue: Any,
                                                     redis_url: str, prefix: str) -> None:
    queue = make_queue("mail")
    queue.add("welcome", {"to": "alice@example.com", "password": "hunter2"}, job_id="m1")

    def redact(data: Any) -> Any:
        return {k: ("***" if k == "password" else v) for k, v in data.items()}

    served = serve(create_app(redis_url, prefix=prefix, redact=redact))
    with client(served.url) as http:
        shown = [http.get("/queues/mail").text, http.get("/queues/mail?state=waiting").text,
                 http.get("/queues/mail/jobs/m1").text,
                 http.get("/search", params={"q": "alice", "kind": "data", "queue": "mail",
                                             "state": "waiting"}).text]
        oracle = http.get("/search", params={"q": "hunter2", "kind": "data", "queue": "mail",
                                             "state": "waiting"}).text
    for page in shown:
        assert "hunter2" not in page
        assert "***" in page
    assert "0 match(es)" in oracle  # search reads the redacted data, not the secret


def test_a_failing_redact_hides_the_data(serve: Any, make_queue: Any, redis_url: str,
                                         prefix: str) -> None:
    make_queue("mail").add("welcome", {"secret": "s3cr3t"}, job_id="m1")

    def redact(data: Any) -> Any:
        raise KeyError("oops")

    served = serve(create_app(redis_url, prefix=prefix, redact=redact))
    with client(served.url) as http:
        page = http.get("/queues/mail/jobs/m1").text
    assert "s3cr3t" not in page and "redact function raised" in page


def test_search_by_id_name_and_data_is_bounded(serve: Any, make_queue: Any, redis_url: str,
                                               prefix: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    queue = make_queue("orders")
    make_queue("other").add("x", {}, job_id="shared")
    queue.add("x", {}, job_id="shared")
    queue.add_bulk([{"name": f"order-{i}", "data": {"sku": f"sku-{i}"}} for i in range(30)])
    monkeypatch.setattr(pages, "SEARCH_SCAN", 10)
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        one = http.get("/search", params={"q": "3", "kind": "id"})
        both = http.get("/search", params={"q": "shared", "kind": "id"})
        first = http.get("/search", params={"q": "sku-2", "kind": "data", "queue": "orders",
                                            "state": "waiting"})
        more = http.get("/search", params={"q": "sku-2", "kind": "data", "queue": "orders",
                                           "state": "waiting", "offset": 10})
        by_name = http.get("/search", params={"q": "ORDER-29", "kind": "name",
                                              "queue": "orders", "state": "waiting"})
    assert one.status_code == 303 and one.headers["location"] == "/queues/orders/jobs/3"
    assert both.status_code == 200 and "/queues/other/jobs/shared" in both.text \
        and "/queues/orders/jobs/shared" in both.text
    # newest first: sku-29..sku-20 are the first 10 jobs read; the next window is said.
    assert "Scanned jobs 1 to 10 of 31 waiting jobs in orders: 10 match(es)" in first.text
    assert "offset=20" in more.text and "Scanned jobs 11 to 20 of 31" in more.text
    assert "order-29" in by_name.text and "1 match(es)" in by_name.text


async def test_workers_page_shows_a_consuming_worker(serve: Any, redis_url: str,
                                                     prefix: str) -> None:
    async def noop(job: Any) -> None:
        return None

    worker = Worker("jobs", noop, connection=redis_url, prefix=prefix, autorun=False,
                    concurrency=3)
    await worker.start()
    try:
        served = serve(create_app(redis_url, prefix=prefix))
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
            deadline = time.monotonic() + 10
            while True:
                page = (await http.get("/workers")).text
                if "consuming" in page and worker.id in page:
                    break
                assert time.monotonic() < deadline, page
                await asyncio.sleep(0.05)
    finally:
        await worker.close()
    row = re.search(rf"<tr>\s*<td><a[^>]*>jobs</a></td>\s*<td>{re.escape(worker.id)}</td>"
                    r"(.*?)</tr>", page, re.S)
    assert row is not None and '<td class="num">3</td>' in row.group(1)
    # Its connection, named as BullMQ names workers' connections, is listed too.
    clients = page.split("Worker connections")[1]
    assert re.search(r'<tr><td><a href="/queues/jobs">jobs</a></td>', clients), clients


def test_schedulers_tab_lists_and_removes(serve: Any, make_queue: Any, redis_url: str,
                                          prefix: str) -> None:
    queue = make_queue("cron")
    queue.upsert_job_scheduler("nightly", pattern="0 3 * * *", tz="UTC",
                               template={"name": "report", "data": {"kind": "daily"}})
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        page = http.get("/queues/cron?state=schedulers").text
        assert "nightly" in page and "0 3 * * *" in page and "daily" in page
        done = http.post("/queues/cron/actions/remove-scheduler",
                         data={"csrf_token": csrf_of(page), "scheduler_id": "nightly"})
    assert done.status_code == 303
    assert queue.get_job_schedulers() == []


def test_health_says_whether_redis_answers(serve: Any, redis_url: str, prefix: str) -> None:
    up = serve(create_app(redis_url, prefix=prefix))
    with socket_closed_port() as dead_port:
        down = serve(create_app(f"redis://127.0.0.1:{dead_port}/0", prefix=prefix))
        with client(up.url) as a, client(down.url) as b:
            ok, bad = a.get("/health"), b.get("/health")
            page = b.get("/")
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}
    assert bad.status_code == 503 and bad.json() == {"status": "unavailable"}
    assert page.status_code == 503
    assert str(dead_port) not in page.text and "redis://" not in page.text
    assert "Traceback" not in page.text


class socket_closed_port:
    """A loopback port nobody listens on (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        sock.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        return None


def test_unknown_queue_and_job_are_404_pages(serve: Any, make_queue: Any, redis_url: str,
                                             prefix: str) -> None:
    make_queue("known").add("x", {})
    served = serve(create_app(redis_url, prefix=prefix, queues=["known", "hidden"]))
    make_queue("hidden").add("x", {})
    make_queue("unlisted").add("x", {})
    with client(served.url) as http:
        assert http.get("/queues/known/jobs/999").status_code == 404
        assert http.get("/queues/nope").status_code == 404
        assert http.get("/queues/unlisted").status_code == 404  # not in queues=
        assert http.get("/queues/hidden").status_code == 200
        overview = http.get("/").text
    assert "known" in overview and "hidden" in overview and "unlisted" not in overview


def test_mounted_under_a_path_links_stay_under_it(serve: Any, make_queue: Any,
                                                  redis_url: str, prefix: str) -> None:
    make_queue("emails").add("send", {}, job_id="e1")
    dashboard = create_app(redis_url, prefix=prefix)
    # A mounted app's lifespan is not run by Starlette: the outer app runs it, so
    # the dashboard's Redis client is closed at shutdown.
    outer = Starlette(routes=[Mount("/admin/queues", app=dashboard)],
                      lifespan=dashboard.router.lifespan_context)
    served = serve(outer)
    with client(served.url) as http:
        overview = http.get("/admin/queues/").text
        job = http.get("/admin/queues/queues/emails/jobs/e1")
        css = http.get("/admin/queues/static/dashboard.css")
    assert 'href="/admin/queues/queues/emails"' in overview
    assert 'href="/admin/queues/static/dashboard.css"' in overview
    assert job.status_code == 200 and css.status_code == 200


def test_the_queue_list_is_rescanned_on_request(serve: Any, make_queue: Any, redis_url: str,
                                                prefix: str) -> None:
    make_queue("first").add("x", {})
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        assert "first" in http.get("/").text
        make_queue("second").add("x", {})
        assert "second" in http.get("/?refresh=1").text


def test_create_app_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        create_app("redis://127.0.0.1:1/0", basic_auth="nopassword")
    with pytest.raises(TypeError, match="auth must be a callable"):
        create_app("redis://127.0.0.1:1/0", auth="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="':'"):
        create_app("redis://127.0.0.1:1/0", queues=["a:b"])
    with pytest.raises(ValueError, match="not a str"):
        create_app("redis://127.0.0.1:1/0", queues="emails")



def test_eviction_policy_other_than_noeviction_is_a_warning(serve: Any,
                                                            fresh_redis: Any) -> None:
    import redis

    from pyqueue import Queue

    with Queue("q", connection=fresh_redis.url) as queue:
        queue.add("x", {})
    served = serve(create_app(fresh_redis.url))
    with client(served.url) as http:
        assert "maxmemory-policy" not in http.get("/").text
        direct = redis.Redis.from_url(fresh_redis.url)
        direct.config_set("maxmemory-policy", "allkeys-lru")
        direct.close()
        page = http.get("/").text
    assert "Redis maxmemory-policy is &#39;allkeys-lru&#39;, not &#39;noeviction&#39;" in page


def test_warnings_for_paused_idle_and_rising_failures() -> None:
    summary = queries.QueueSummary(name="q", counts={"waiting": 2, "prioritized": 1},
                                   paused=True, library="pyqueue", workers=0,
                                   failed_last_min=7, failed_prev_min=2)
    queries.add_warnings(summary)
    assert summary.warnings == [
        "paused: workers take no new jobs",
        "3 job(s) waiting and no worker is consuming",
        "failures rising: 7 in the last minute, 2 the minute before"]
    calm = queries.QueueSummary(name="q", counts={"waiting": 2}, paused=False,
                                library="bullmq", workers=1, failed_last_min=7,
                                failed_prev_min=9)
    queries.add_warnings(calm)
    assert calm.warnings == []


def test_job_ids_with_slashes_and_odd_characters(serve: Any, make_queue: Any, redis_url: str,
                                                 prefix: str) -> None:
    queue = make_queue("q")
    odd = ["a/b", "x?y#z", "sp ace", "ünï", "100%"]
    for job_id in odd:
        queue.add("x", {}, job_id=job_id)
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        listing = http.get("/queues/q?state=waiting").text
        links = re.findall(r'class="job-link" href="([^"]+)"', listing)
        assert len(links) == len(odd)
        for link in links:
            page = http.get(link)
            assert page.status_code == 200, link
        token = csrf_of(listing)
        removed = http.post(links[0], data={"csrf_token": token, "action": "remove"})
    assert removed.status_code == 303
    assert len(queue.get_jobs("waiting")) == len(odd) - 1


def test_a_damaged_job_hash_still_renders(serve: Any, make_queue: Any, redis_url: str,
                                          prefix: str, redis_client: Any) -> None:
    queue = make_queue("q")
    queue.add("fine", {}, job_id="ok")
    queue.add("broken", {}, job_id="bad")
    redis_client.hset(f"{prefix}:q:bad", mapping={
        "data": "{not json", "opts": "[", "timestamp": "yesterday", "progress": "{",
        "stacktrace": "nope", "atm": "many", "finishedOn": "x", "returnvalue": "{"})
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        for path in ("/", "/queues/q", "/queues/q?state=waiting", "/queues/q/jobs/bad",
                     "/search?q=not&kind=data&queue=q&state=waiting"):
            response = http.get(path)
            assert response.status_code == 200, path
        job = http.get("/queues/q/jobs/bad").text
    assert "corrupt job" in job


def test_behind_a_proxy_that_strips_the_prefix(serve: Any, make_queue: Any, redis_url: str,
                                               prefix: str) -> None:
    make_queue("emails").add("send", {}, job_id="e1")
    served = serve(create_app(redis_url, prefix=prefix), root_path="/queues-admin")
    with client(served.url) as http:  # the proxy forwards /queues-admin/x as /x
        overview = http.get("/")
        job = http.get("/queues/emails/jobs/e1")
    assert overview.status_code == 200 and job.status_code == 200
    assert 'href="/queues-admin/queues/emails"' in overview.text
    assert 'href="/queues-admin/static/dashboard.css"' in overview.text
    assert "Path=/queues-admin" in overview.headers["set-cookie"]


def test_a_flow_child_links_to_its_parent(serve: Any, make_queue: Any, redis_url: str,
                                          prefix: str, redis_client: Any) -> None:
    make_queue("invoices").add("send-invoice", {}, job_id="inv-7")
    make_queue("payments").add("charge", {}, job_id="pay-7")
    # A child as BullMQ's FlowProducer writes it: parentKey names the parent's hash.
    redis_client.hset(f"{prefix}:payments:pay-7", "parentKey", f"{prefix}:invoices:inv-7")
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        page = http.get("/queues/payments/jobs/pay-7").text
    assert 'href="/queues/invoices/jobs/inv-7"' in page


def test_connection_names_and_job_keys_parse_back() -> None:
    from pyqueue._keys import QueueKeys

    keys = QueueKeys("bull", "emails")
    assert QueueKeys.parse_connection_name("bull", keys.connection_name("w1")) == \
        ("emails", "w1")
    assert QueueKeys.parse_connection_name("bull", keys.connection_name(None)) == \
        ("emails", "")
    for name in ("other:ZW1haWxz", "bull:not base64!", "bull:", "redis-cli"):
        assert QueueKeys.parse_connection_name("bull", name) is None
    assert QueueKeys.parse_job_key("bull", keys.job("repeat:x:1")) == ("emails", "repeat:x:1")
    assert QueueKeys.parse_job_key("bull", "other:emails:1") is None
    assert QueueKeys.parse_job_key("bull", "bull:emails") is None


def test_every_page_is_reachable_from_the_overview_and_answers(serve: Any, make_queue: Any,
                                                               redis_url: str,
                                                               prefix: str) -> None:
    from html import unescape
    from urllib.parse import urljoin, urlsplit

    queue = make_queue("emails")
    queue.add("send", {"to": "a@example.com"}, job_id="e1")
    queue.add("later", {}, job_id="e2", delay=600)
    queue.upsert_job_scheduler("hourly", every=3600, template={"name": "digest"})
    served = serve(create_app(redis_url, prefix=prefix))
    seen: set[str] = set()
    todo = ["/"]
    with client(served.url) as http:
        while todo and len(seen) < 150:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            response = http.get(path)
            assert response.status_code in (200, 303), path
            if "text/html" not in response.headers.get("content-type", ""):
                continue
            for href in re.findall(r'href="([^"]+)"', response.text):
                target = urljoin(path, unescape(href))
                parts = urlsplit(target)
                if parts.netloc or target.startswith("data:"):
                    continue
                todo.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    paths = {urlsplit(p).path for p in seen}
    for expected in ("/workers", "/search", "/queues/emails", "/queues/emails/jobs/e1",
                     "/queues/emails/jobs/e2", "/static/dashboard.css"):
        assert expected in paths, expected
    assert any("state=schedulers" in p for p in seen) and any("state=groups" in p for p in seen)


def test_metrics_in_prometheus_text_format(serve: Any, make_queue: Any, redis_url: str,
                                           prefix: str) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    queue = make_queue("emails")
    queue.add_bulk([{"name": "send", "data": {}} for _ in range(3)])
    queue.add("later", {}, delay=600)
    queue.pause()
    served = serve(create_app(redis_url, prefix=prefix, basic_auth="prom:scrape"))
    with client(served.url) as http:
        assert http.get("/metrics").status_code == 401  # behind the dashboard's auth
        response = http.get("/metrics", auth=("prom", "scrape"))
    assert response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text)
               for s in family.samples}
    assert samples[("pyqueue_queue_jobs", (("queue", "emails"), ("state", "waiting")))] == 3
    assert samples[("pyqueue_queue_jobs", (("queue", "emails"), ("state", "delayed")))] == 1
    assert samples[("pyqueue_queue_paused", (("queue", "emails"),))] == 1
    assert samples[("pyqueue_queue_workers", (("queue", "emails"),))] == 0
    assert samples[("pyqueue_queue_oldest_waiting_age_seconds", (("queue", "emails"),))] >= 0
