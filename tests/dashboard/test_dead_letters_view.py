"""The dashboard's dead-letters view over real HTTP: listing with filters, replay (one,
selected, all matching, paced), purge, CSRF, read-only, escaping and redaction."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from pyqueue import Queue
from pyqueue.testing import run_until_idle
from pyqueue.web import create_app

from .conftest import client, csrf_of

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _dead(queue: Queue, redis_url: str, prefix: str, jobs: list[tuple[str, dict[str, Any]]],
          reason: Any) -> None:
    """Add ``jobs`` (name, data) with one attempt each and fail them all into the DLQ."""
    for name, data in jobs:
        queue.add(name, data, attempts=1)

    def fail(job: Any) -> None:
        raise RuntimeError(reason(job) if callable(reason) else reason)

    run_until_idle(queue.name, fail, connection=redis_url, prefix=prefix,
                   raise_on_failure=False, timeout=20)


@pytest.fixture
def mail(make_queue: Any, redis_url: str, prefix: str) -> tuple[Queue, Queue]:
    """Queue ``mail`` with its DLQ ``mail-dead`` holding five entries: three ``send``
    (``smtp 550``), two ``bounce`` (``timeout``)."""
    queue, dlq = make_queue("mail"), make_queue("mail-dead")
    queue.set_dead_letter_queue(dlq.name)
    _dead(queue, redis_url, prefix,
          [("send", {"to": f"u{i}@example.com", "password": "hunter2"}) for i in range(3)]
          + [("bounce", {"to": f"b{i}@example.com", "password": "hunter2"}) for i in range(2)],
          lambda job: "smtp 550 mailbox unavailable" if job.name == "send" else "timeout")
    assert len(dlq.get_dead_letters()) == 5
    return queue, dlq


def _entry_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-entry-id="([^"]+)"', html)


def _post(http: httpx.Client, path: str, token: str, **data: Any) -> httpx.Response:
    return http.post(path, data={"csrf_token": token, **data})


def test_the_view_lists_and_filters_entries(serve: Any, mail: tuple[Queue, Queue],
                                            redis_url: str, prefix: str) -> None:
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        queue_page = http.get("/queues/mail").text
        assert 'href="/queues/mail/dead-letters"' in queue_page  # the way in
        assert 'href="/queues/mail-dead/dead-letters"' in http.get("/queues/mail-dead").text
        page = http.get("/queues/mail/dead-letters")
        assert page.status_code == 200 and len(_entry_ids(page.text)) == 5
        assert "smtp 550 mailbox unavailable" in page.text
        assert 'href="/queues/mail/jobs/1"' in page.text  # the original, still in failed
        by_name = http.get("/queues/mail/dead-letters", params={"name": "bounce"}).text
        assert len(_entry_ids(by_name)) == 2
        by_reason = http.get("/queues/mail/dead-letters", params={"failed_reason": "550"}).text
        assert len(_entry_ids(by_reason)) == 3
        recent = http.get("/queues/mail/dead-letters", params={"since": "1h"}).text
        assert len(_entry_ids(recent)) == 5
        future = http.get("/queues/mail/dead-letters",
                          params={"since": "2999-01-01T00:00"}).text
        assert _entry_ids(future) == [] and "No dead letters match these filters" in future
        bad = http.get("/queues/mail/dead-letters", params={"since": "yesterday"})
        assert bad.status_code == 200 and "expected an ISO date-time" in bad.text
        on_dlq = http.get("/queues/mail-dead/dead-letters").text  # the DLQ itself: all
        assert len(_entry_ids(on_dlq)) == 5
        # A queue with no DLQ that is none has no such view.
        assert http.get("/queues/nope/dead-letters").status_code == 404


def test_a_plain_queue_has_no_dead_letters_view(serve: Any, make_queue: Any, redis_url: str,
                                                prefix: str) -> None:
    make_queue("plain").add("x", {})
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        assert "dead-letters" not in http.get("/queues/plain").text
        assert http.get("/queues/plain/dead-letters").status_code == 404


def test_replay_one_selected_and_all_matching(serve: Any, mail: tuple[Queue, Queue],
                                              redis_url: str, prefix: str) -> None:
    queue, dlq = mail
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        page = http.get("/queues/mail/dead-letters").text
        token, ids = csrf_of(page), _entry_ids(page)
        one = _post(http, "/queues/mail/dead-letters/actions/replay", token, scope="selected",
                    ids=ids[0])
        assert one.status_code == 303
        assert "1 dead letter(s) replayed" in http.get(one.headers["location"]).text
        assert queue.get_job_counts("waiting")["waiting"] == 1
        assert len(dlq.get_dead_letters()) == 4
        two = _post(http, "/queues/mail/dead-letters/actions/replay", token, scope="selected",
                    ids=ids[1:3])
        assert two.status_code == 303 and "n=2" in two.headers["location"]
        assert queue.get_job_counts("waiting")["waiting"] == 3
        # All matching the filters (the two bounces), paced at 10/s: delayed, not waiting.
        rest = _post(http, "/queues/mail/dead-letters/actions/replay", token,
                     scope="matching", name="bounce", rate="10")
        assert rest.status_code == 303
        assert "name=bounce" in rest.headers["location"]
        assert len(dlq.get_dead_letters()) == 0
        counts = queue.get_job_counts("waiting", "delayed")
        assert counts["waiting"] + counts["delayed"] == 5 and counts["delayed"] >= 1
        replayed = [j for j in queue.get_jobs(["waiting", "delayed"]) if j.name == "bounce"]
        assert len(replayed) == 2 and replayed[0].data["password"] == "hunter2"


def test_purge_selected_and_matching(serve: Any, mail: tuple[Queue, Queue], redis_url: str,
                                     prefix: str) -> None:
    queue, dlq = mail
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        page = http.get("/queues/mail/dead-letters").text
        token, ids = csrf_of(page), _entry_ids(page)
        one = _post(http, "/queues/mail/dead-letters/actions/purge", token, scope="selected",
                    ids=ids[0])
        assert one.status_code == 303
        assert "1 dead letter(s) purged" in http.get(one.headers["location"]).text
        matching = _post(http, "/queues/mail-dead/dead-letters/actions/purge", token,
                         scope="matching", failed_reason="550")
        assert matching.status_code == 303 and "n=2" in matching.headers["location"]
        left = dlq.get_dead_letters()
        assert {j.name for j in left} == {"bounce"} and len(left) == 2
        assert queue.get_job_counts("waiting")["waiting"] == 0  # purge replays nothing


def test_actions_are_guarded(serve: Any, mail: tuple[Queue, Queue], redis_url: str,
                             prefix: str) -> None:
    _queue, dlq = mail
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        page = http.get("/queues/mail/dead-letters").text
        token = csrf_of(page)
        no_token = http.post("/queues/mail/dead-letters/actions/purge",
                             data={"scope": "matching"})
        assert no_token.status_code == 403
        wrong = _post(http, "/queues/mail/dead-letters/actions/purge", "x" * 43,
                      scope="matching")
        assert wrong.status_code == 403
        other_site = http.post("/queues/mail/dead-letters/actions/purge",
                               data={"csrf_token": token, "scope": "matching"},
                               headers={"Origin": "https://evil.example"})
        assert other_site.status_code == 403
        assert _post(http, "/queues/mail/dead-letters/actions/replay", token,
                     scope="selected").status_code == 400  # nothing selected
        assert _post(http, "/queues/mail/dead-letters/actions/replay", token,
                     scope="matching", rate="-1").status_code == 400
        assert _post(http, "/queues/mail/dead-letters/actions/explode", token,
                     scope="matching").status_code == 404
        assert http.get("/queues/mail/dead-letters/actions/purge").status_code == 405
    assert len(dlq.get_dead_letters()) == 5
    read_only = serve(create_app(redis_url, prefix=prefix, read_only=True))
    with client(read_only.url, cookies={"pyqueue_csrf": token}) as http:
        page = http.get("/queues/mail/dead-letters").text
        assert len(_entry_ids(page)) == 5
        assert "<form method=\"post\"" not in page and "Replay" not in page
        refused = http.post("/queues/mail/dead-letters/actions/purge",
                            data={"csrf_token": token, "scope": "matching"})
        assert refused.status_code == 403
    assert len(dlq.get_dead_letters()) == 5


def test_entries_are_escaped_and_redacted(serve: Any, make_queue: Any, redis_url: str,
                                          prefix: str) -> None:
    queue, dlq = make_queue("evil"), make_queue("evil-dead")
    queue.set_dead_letter_queue(dlq.name)
    _dead(queue, redis_url, prefix, [(XSS, {"html": XSS, "password": "hunter2"})], XSS)

    def redact(data: Any) -> Any:
        return {k: "***" if k == "password" else v for k, v in data.items()} \
            if isinstance(data, dict) else data

    served = serve(create_app(redis_url, prefix=prefix, redact=redact))
    with client(served.url) as http:
        page = http.get("/queues/evil/dead-letters").text
        (entry,) = _entry_ids(page)
        job_page = http.get(f"/queues/evil-dead/jobs/{entry}").text
        # The dead-letter queue's own tabs and search: the entry's inner data redacted.
        tab = http.get("/queues/evil-dead", params={"state": "waiting"}).text
        search = http.get("/search", params={"q": "***", "kind": "data", "state": "waiting",
                                             "queue": "evil-dead"}).text
        assert 'href="/queues/evil-dead/jobs/1"' in search
        leak = http.get("/search", params={"q": "hunter", "kind": "data", "state": "waiting",
                                           "queue": "evil-dead"}).text
        assert 'href="/queues/evil-dead/jobs/1"' not in leak
    for html in (page, job_page, tab, search):
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html
        assert "hunter2" not in html and "***" in html


def test_pagination_of_many_entries(serve: Any, make_queue: Any, redis_url: str,
                                    prefix: str) -> None:
    queue, dlq = make_queue("many"), make_queue("many-dead")
    queue.set_dead_letter_queue(dlq.name)
    _dead(queue, redis_url, prefix, [("n", {"i": i}) for i in range(120)], "no")
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        first = http.get("/queues/many/dead-letters").text
        assert len(_entry_ids(first)) == 50 and "page 1 of 3 (120 entries)" in first
        last = http.get("/queues/many/dead-letters", params={"page": "3"}).text
        assert len(_entry_ids(last)) == 20
        assert not set(_entry_ids(first)) & set(_entry_ids(last))
        # On the DLQ itself, unfiltered, only the page's window is read: same pages.
        for page in ("1", "2", "3", "99"):
            on_origin = http.get("/queues/many/dead-letters", params={"page": page}).text
            on_dlq = http.get("/queues/many-dead/dead-letters", params={"page": page}).text
            assert _entry_ids(on_dlq) == _entry_ids(on_origin)
        assert "page 3 of 3 (120 entries)" in on_dlq
        assert _entry_ids(first)[:2] == ["1", "2"] and _entry_ids(last)[-1] == "120"


def test_an_entry_job_page_replays_or_purges_it(serve: Any, mail: tuple[Queue, Queue],
                                                redis_url: str, prefix: str) -> None:
    queue, dlq = mail
    first, second = (e.id for e in dlq.get_dead_letters(0, 1))
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        page = http.get(f"/queues/mail-dead/jobs/{first}").text
        assert 'href="/queues/mail/jobs/1"' in page and "Replay into mail" in page
        replayed = _post(http, "/queues/mail-dead/dead-letters/actions/replay", csrf_of(page),
                         scope="selected", ids=first)
        assert replayed.status_code == 303 and "n=1" in replayed.headers["location"]
        purged = _post(http, "/queues/mail-dead/dead-letters/actions/purge", csrf_of(page),
                       scope="selected", ids=second)
        assert purged.status_code == 303 and "n=1" in purged.headers["location"]
        assert "Replay into" not in http.get("/queues/mail/jobs/1").text  # not an entry
    assert queue.get_job_counts("waiting")["waiting"] == 1
    assert first not in {e.id for e in dlq.get_dead_letters()} and len(dlq.get_dead_letters()) == 3
    read_only = serve(create_app(redis_url, prefix=prefix, read_only=True))
    with client(read_only.url) as http:
        remaining = dlq.get_dead_letters(0, 0)[0].id
        page = http.get(f"/queues/mail-dead/jobs/{remaining}").text
        assert "A dead letter of" in page and "Replay into" not in page
