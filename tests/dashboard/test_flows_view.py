"""Flows on the dashboard over real HTTP: a job page links its parent and its children (with
their states, a page at a time: 10,000 children stay one bounded page), the waiting-children
tab shows each parent's dependency counts, and /metrics is QueueCollector's output."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from pyqueue import FlowProducer
from pyqueue.testing import run_until_idle
from pyqueue.web import create_app, flowview

from .conftest import client


def _children(html: str) -> list[str]:
    return re.findall(r'<tr data-child="([^"]+)">', html)


def _count(html: str, group: str) -> int:
    found = re.search(rf'data-group="{group}">(\d+)<', html)
    assert found, f"no {group} count"
    return int(found.group(1))


def test_parent_and_children_link_each_other_with_states(serve: Any, make_queue: Any,
                                                         redis_url: str, prefix: str) -> None:
    make_queue("invoices"), make_queue("payments")
    with FlowProducer(connection=redis_url, prefix=prefix) as flows:
        flows.add({"name": "invoice", "queue_name": "invoices", "data": {},
                   "opts": {"job_id": "inv-1"},
                   "children": [{"name": "charge", "queue_name": "payments",
                                 "data": {"n": i}, "opts": {"job_id": f"pay-{i}"}}
                                for i in range(3)]})

    def charge(job: Any) -> int:
        if job.data["n"] == 2:
            raise RuntimeError("card declined")
        return int(job.data["n"])

    # pay-2 fails with the default policy: the parent stays waiting for it.
    run_until_idle("payments", charge, connection=redis_url, prefix=prefix,
                   raise_on_failure=False)
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        parent = http.get("/queues/invoices/jobs/inv-1").text
        assert _children(parent) == ["payments/pay-2"]  # pending ones first
        assert 'class="badge state-failed">failed<' in parent
        assert (_count(parent, "pending"), _count(parent, "processed")) == (1, 2)
        done = http.get("/queues/invoices/jobs/inv-1", params={"children": "processed"}).text
        assert _children(done) == ["payments/pay-0", "payments/pay-1"]
        assert 'href="/queues/payments/jobs/pay-0"' in done
        assert 'class="badge state-completed">completed<' in done
        child = http.get("/queues/payments/jobs/pay-0").text
        assert 'class="parent-link" href="/queues/invoices/jobs/inv-1"' in child
        assert 'state-waiting-children">waiting-children<' in child
        tab = http.get("/queues/invoices", params={"state": "waiting-children"}).text
        row = re.search(r'<tr data-job-id="inv-1">(.*?)</tr>', tab, re.S)
        assert row is not None and '<td class="num deps">1 / 2 / 0 / 0</td>' in row.group(1)
        assert re.search(r"waiting-children <span class=\"count\">1<", tab)
        plain = http.get("/queues/payments/jobs/pay-1").text
        assert "<h2>Children</h2>" not in plain  # no children: no section


def test_ten_thousand_children_are_paginated(serve: Any, make_queue: Any, redis_url: str,
                                             prefix: str) -> None:
    make_queue("big"), make_queue("parts")
    with FlowProducer(connection=redis_url, prefix=prefix) as flows:
        flows.add({"name": "parent", "queue_name": "big", "opts": {"job_id": "p"},
                   "children": [{"name": "part", "queue_name": "parts", "data": {"i": i}}
                                for i in range(10_000)]})
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        started = time.monotonic()
        first = http.get("/queues/big/jobs/p")
        elapsed = time.monotonic() - started
        assert first.status_code == 200
        shown = _children(first.text)
        assert len(shown) == flowview.CHILD_PAGE and shown[:2] == ["parts/1", "parts/2"]
        assert _count(first.text, "pending") == 10_000
        assert f"page 1 of {10_000 // flowview.CHILD_PAGE}" in first.text
        last = http.get("/queues/big/jobs/p", params={"children_page": "200"}).text
        assert _children(last)[-1] == "parts/10000"
        assert 'class="badge state-waiting">waiting<' in last
        beyond = http.get("/queues/big/jobs/p", params={"children_page": "999"}).text
        assert _children(beyond) == _children(last)  # clamped to the last page
    assert elapsed < 5, f"a page of a 10,000-child parent took {elapsed:.2f} s"


def test_metrics_are_the_queue_collectors(serve: Any, make_queue: Any, redis_url: str,
                                          prefix: str) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pyqueue.prometheus import QueueCollector

    queue = make_queue("emails")
    queue.add_bulk([{"name": "send", "data": {}} for _ in range(3)])
    queue.add("later", {}, delay=600)
    make_queue("other").add("x", {})

    def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples
                if "age" not in s.name}  # the only value that moves while we look

    registry = CollectorRegistry()
    collector = QueueCollector(redis_url, prefix=prefix)
    registry.register(collector)
    try:
        expected = samples(generate_latest(registry).decode())
    finally:
        collector.close()
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        got = samples(http.get("/metrics").text)
    assert got == expected
    assert got[("pyqueue_queue_jobs", (("queue", "emails"), ("state", "waiting")))] == 3
    assert got[("pyqueue_queue_jobs", (("queue", "other"), ("state", "waiting")))] == 1
    limited = serve(create_app(redis_url, prefix=prefix, queues=["other"]))
    with client(limited.url) as http:
        only = samples(http.get("/metrics").text)
    assert {dict(labels)["queue"] for _, labels in only} == {"other"}
