"""The dashboard's guards over real HTTP: basic auth and the auth hook, CSRF, read-only mode,
the response headers (CSP), and the loud warning for an open dashboard."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.requests import Request

from pyqueue._cli_dashboard import open_warning
from pyqueue.web import create_app
from pyqueue.web.security import is_loopback

from .conftest import client, csrf_of


def test_basic_auth_401_without_credentials_and_health_stays_open(serve: Any, make_queue: Any,
                                                                  redis_url: str,
                                                                  prefix: str) -> None:
    make_queue("q").add("x", {}, job_id="j1")
    served = serve(create_app(redis_url, prefix=prefix, basic_auth="admin:s3cret"))
    with client(served.url) as anonymous:
        for path in ("/", "/queues/q", "/queues/q/jobs/j1", "/workers", "/search",
                     "/static/dashboard.css"):
            response = anonymous.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Basic ")
        assert anonymous.post("/queues/q/actions/pause").status_code == 401
        assert anonymous.get("/health").status_code == 200
    with client(served.url, auth=("admin", "wrong")) as wrong:
        assert wrong.get("/").status_code == 401
    with client(served.url, auth=("admin", "s3cret")) as right:
        assert right.get("/").status_code == 200
        assert right.get("/queues/q/jobs/j1").status_code == 200


def test_the_auth_hook_decides_sync_or_async(serve: Any, make_queue: Any, redis_url: str,
                                             prefix: str) -> None:
    make_queue("q").add("x", {})

    def sync_hook(request: Request) -> bool:
        return request.headers.get("x-user") == "ops"

    async def async_hook(request: Request) -> bool:
        return request.cookies.get("session") == "valid"

    def broken_hook(request: Request) -> bool:
        raise RuntimeError("login service down")

    sync_app = serve(create_app(redis_url, prefix=prefix, auth=sync_hook))
    async_app = serve(create_app(redis_url, prefix=prefix, auth=async_hook))
    broken_app = serve(create_app(redis_url, prefix=prefix, auth=broken_hook))
    with client(sync_app.url) as http:
        assert http.get("/").status_code == 403
        assert http.get("/", headers={"x-user": "ops"}).status_code == 200
    with client(async_app.url) as http:
        assert http.get("/").status_code == 403
        assert http.get("/", headers={"cookie": "session=valid"}).status_code == 200
    with client(broken_app.url) as http:
        response = http.get("/")
        assert response.status_code == 403 and "login service down" not in response.text


def test_actions_need_the_csrf_token(serve: Any, make_queue: Any, redis_url: str,
                                     prefix: str) -> None:
    queue = make_queue("q")
    queue.add("x", {})
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        token = csrf_of(http.get("/queues/q").text)
        assert http.cookies.get("pyqueue_csrf") == token
        missing = http.post("/queues/q/actions/pause", data={})
        wrong = http.post("/queues/q/actions/pause", data={"csrf_token": "A" * 43})
        other_site = http.post("/queues/q/actions/pause", data={"csrf_token": token},
                               headers={"origin": "https://evil.example"})
        assert not queue.is_paused()
        for response in (missing, wrong, other_site):
            assert response.status_code == 403
        assert "CSRF token is missing" in missing.text
        assert "CSRF token is wrong" in wrong.text
        assert "another site" in other_site.text
        same_site = http.post("/queues/q/actions/pause", data={"csrf_token": token},
                              headers={"origin": served.url})
    assert same_site.status_code == 303 and queue.is_paused()
    with client(served.url) as fresh:  # a token without its cookie is refused too
        assert fresh.post("/queues/q/actions/resume",
                          data={"csrf_token": token}).status_code == 403
    assert queue.is_paused()


def test_the_csrf_cookie_is_strict_and_http_only(serve: Any, make_queue: Any, redis_url: str,
                                                 prefix: str) -> None:
    make_queue("q").add("x", {})
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        cookie = http.get("/").headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie


def test_get_never_changes_anything(serve: Any, make_queue: Any, redis_url: str,
                                    prefix: str) -> None:
    queue = make_queue("q")
    queue.add("x", {})
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        assert http.get("/queues/q/actions/pause").status_code == 405
    assert not queue.is_paused()


def test_read_only_renders_no_forms_and_refuses_actions(serve: Any, make_queue: Any,
                                                        redis_url: str, prefix: str) -> None:
    queue = make_queue("q")
    queue.add("x", {}, job_id="j1")
    writable = serve(create_app(redis_url, prefix=prefix))
    with client(writable.url) as http:
        token = csrf_of(http.get("/queues/q").text)
        cookie = http.cookies.get("pyqueue_csrf")
    served = serve(create_app(redis_url, prefix=prefix, read_only=True))
    with client(served.url, cookies={"pyqueue_csrf": cookie or ""}) as http:
        pages = [http.get(p).text for p in ("/", "/queues/q", "/queues/q?state=waiting",
                                             "/queues/q/jobs/j1", "/queues/q?state=schedulers")]
        for page in pages:
            assert 'method="post"' not in page
        assert "read-only" in pages[1]
        for path, data in (("/queues/q/actions/pause", {}),
                           ("/queues/q/jobs/j1", {"action": "remove"}),
                           ("/queues/q/actions/obliterate", {"confirm": "q", "force": "1"})):
            response = http.post(path, data={"csrf_token": token, **data})
            assert response.status_code == 403 and "read-only" in response.text
    assert not queue.is_paused() and queue.get_job("j1") is not None


def test_every_response_carries_a_strict_csp(serve: Any, make_queue: Any, redis_url: str,
                                             prefix: str) -> None:
    make_queue("q").add("x", {})
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        for path in ("/", "/queues/q", "/nope", "/health", "/static/dashboard.js"):
            headers = http.get(path).headers
            csp = headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert headers["x-content-type-options"] == "nosniff"
        page = http.get("/queues/q").text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "an inline script"
    assert not re.search(r"\son[a-z]+=", page), "an inline event handler"


def test_payloads_render_as_text(serve: Any, make_queue: Any, redis_url: str,
                                 prefix: str) -> None:
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    queue = make_queue("q")
    queue.add(payload, {"html": payload}, job_id="evil")
    served = serve(create_app(redis_url, prefix=prefix))
    with client(served.url) as http:
        for path in ("/", "/queues/q", "/queues/q?state=waiting", "/queues/q/jobs/evil"):
            page = http.get(path).text
            assert "<img src=x" not in page and '<script>alert' not in page
        assert "&lt;script&gt;alert(" in page


@pytest.mark.parametrize(("host", "loud"), [("127.0.0.1", False), ("localhost", False),
                                            ("::1", False), ("0.0.0.0", True), ("::", True),
                                            ("10.1.2.3", True), ("dash.internal", True)])
def test_listening_beyond_loopback_without_auth_is_loud(host: str, loud: bool) -> None:
    assert is_loopback(host) is not loud
    warning = open_warning(host, 8080, has_auth=False)
    assert (warning is not None) is loud
    if warning:
        assert "WITHOUT AUTHENTICATION" in warning and host in warning
    assert open_warning(host, 8080, has_auth=True) is None
