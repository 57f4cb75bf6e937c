"""Settings, validation, message building, classification, suppressions, CLI, demo."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from _smtp import SENDER

from pyqueue import ConfigurationError, Queue
from pyqueue.email import (
    MAX_ATTACHMENT_BYTES,
    SMTPSettings,
    Suppressions,
    build_message,
    classify_reply,
    enqueue_email,
    html_to_text,
    job_id_for,
    message_id_for,
    validate_data,
)
from pyqueue.email.cli import main as email_cli
from pyqueue.email.demo import run_email_demo

PASSWORD = "hunter2-but-longer"


def test_settings_defaults_to_starttls_with_verification() -> None:
    s = SMTPSettings.from_env({})
    assert (s.mode, s.starttls, s.tls, s.validate_certs, s.effective_port) == \
        ("starttls", True, False, True, 587)


@pytest.mark.parametrize(("env", "mode", "port"), [
    ({"SMTP_TLS": "true"}, "tls", 465),
    ({"SMTP_TLS": "1", "SMTP_STARTTLS": "0"}, "tls", 465),
    ({"SMTP_TLS": "false", "SMTP_STARTTLS": "false"}, "plain", 25),
    ({"SMTP_STARTTLS": "TRUE", "SMTP_PORT": "2525"}, "starttls", 2525),
])
def test_settings_booleans(env: dict[str, str], mode: str, port: int) -> None:
    s = SMTPSettings.from_env(env)
    assert (s.mode, s.effective_port) == (mode, port)


def test_settings_reject_bad_values_and_hide_the_password() -> None:
    with pytest.raises(ConfigurationError, match="SMTP_TLS"):
        SMTPSettings.from_env({"SMTP_TLS": "yes"})
    with pytest.raises(ConfigurationError, match="SMTP_PORT"):
        SMTPSettings.from_env({"SMTP_PORT": "smtp"})
    s = SMTPSettings.from_env({"SMTP_USERNAME": "u", "SMTP_PASSWORD": PASSWORD},
                              host="mail.example.com")
    assert s.host == "mail.example.com" and s.sends_auth
    assert PASSWORD not in repr(s) and PASSWORD not in s.describe()
    plain = s.with_overrides(starttls=False)
    assert not plain.sends_auth and "AUTH skipped" in plain.describe()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("subject", "Hi\r\nBcc: victim@example.com", "CR, LF"),
    ("to", "ada@example.com\nBcc: victim@example.com", "CR, LF"),
    ("to", "ada@example.com, alan@example.com", "2 recipients"),
    ("to", ["ok@example.com", "a@example.com; b@example.com"], "recipients"),
    ("to", "not an address", "not a valid address"),
    ("reply_to", "a@example.com, b@example.com", "2 recipients"),
    ("headers", {"X-Evil": "a\r\nBcc: x@example.com"}, "CR, LF"),
    ("headers", {"Bad Name": "x"}, "not a valid field name"),
])
def test_enqueue_refuses_bad_mail_before_writing(queue: Queue, field: str, value: Any,
                                                 message: str) -> None:
    kwargs: dict[str, Any] = {"to": "ada@example.com", "subject": "s", "text": "t",
                              "mail_uid": "bad"}
    kwargs[field] = value
    with pytest.raises(ValueError, match=message):
        enqueue_email(queue, **kwargs)
    assert sum(queue.get_job_counts().values()) == 0


def test_validation_needs_a_recipient_and_a_body() -> None:
    with pytest.raises(ValueError, match="recipient"):
        validate_data({"text": "x"})
    with pytest.raises(ValueError, match="text, html or a template"):
        validate_data({"to": "a@example.com"})
    with pytest.raises(ValueError, match="unknown email fields"):
        validate_data({"to": "a@example.com", "text": "x", "password": "x"})


def test_attachment_size_cap() -> None:
    from pyqueue.email.message import encode_attachment

    big = encode_attachment("big.bin", b"x" * (MAX_ATTACHMENT_BYTES + 1))
    with pytest.raises(ValueError, match="attachments exceed"):
        validate_data({"to": "a@example.com", "text": "x", "attachments": [big]})


def test_ids_from_mail_uid() -> None:
    assert job_id_for("otp-42") == "mail-otp-42"
    assert job_id_for("user:42:otp").startswith("mail-h")  # ':' may not be in a job id
    assert job_id_for("user:42:otp") == job_id_for("user:42:otp")
    assert message_id_for("otp-42", SENDER) == "<otp-42@app.example.com>"
    odd = message_id_for("a b@c", SENDER)
    assert odd.startswith("<h") and odd.endswith("@app.example.com>")


def test_text_part_generated_from_html() -> None:
    text = html_to_text("<html><head><style>p{}</style></head><body><h1>Title</h1>"
                        "<p>One&amp;two<br>three</p><ul><li>a</li><li>b</li></ul>"
                        "<script>x()</script></body></html>")
    assert text == "Title\n\nOne&two\nthree\n\n- a\n- b\n"
    data = validate_data({"to": "a@example.com", "html": "<p>Hi</p>"})
    msg, sender, rcpts = build_message(data, default_from=SENDER, mail_uid="u")
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "Hi"
    assert sender == "noreply@app.example.com" and rcpts == ["a@example.com"]


@pytest.mark.parametrize(("code", "text", "stage", "kind"), [
    (451, "4.3.0 try later", "data", "retry"),
    (450, "4.2.0 mailbox busy", "rcpt", "retry"),
    (550, "5.1.1 user unknown", "rcpt", "bounce"),
    (550, "Mailbox unavailable", "rcpt", "bounce"),
    (550, "5.1.1 user unknown", "data", "fail"),
    (554, "5.7.1 rejected by policy", "data", "fail"),
    (552, "5.2.2 mailbox full", "rcpt", "fail"),
    (535, "5.7.8 authentication credentials invalid", "auth", "fail"),
    (421, "4.7.28 unusual rate of unsolicited mail", "data", "throttle"),
    (421, "4.7.0 Try again later, closing connection", "connect", "throttle"),
    (451, "Rate limit exceeded, slow down", "data", "throttle"),
    (452, "Too many recipients received this hour", "rcpt", "throttle"),
    (550, "5.4.5 Daily user sending quota exceeded", "data", "throttle"),
    (554, "Throttling failure: Daily message quota exceeded.", "data", "throttle"),
])
def test_classification(code: int, text: str, stage: str, kind: str) -> None:
    assert classify_reply(code, text, stage=stage).kind == kind


def test_quota_replies_pause_longer() -> None:
    assert classify_reply(550, "5.4.5 Daily user sending quota exceeded").quota
    assert not classify_reply(421, "4.7.28 unusual rate").quota


def test_suppression_api_with_expiry(queue: Queue) -> None:
    with Suppressions.of(queue) as supp:
        assert supp.add("Ada <ADA@Example.com>", "complaint") == "ada@example.com"
        supp.add("brief@example.com", "test", expires=0.2)
        assert supp.is_suppressed("ada@example.com")
        assert supp.is_suppressed("brief@example.com")
        time.sleep(0.3)
        assert not supp.is_suppressed("brief@example.com")
        assert [e["address"] for e in supp.list()] == ["ada@example.com"]
        assert supp.remove("ada@example.com") and not supp.remove("ada@example.com")
        with pytest.raises(ValueError):
            supp.add("a@example.com, b@example.com")


def test_cli_suppress_and_dlq(queue: Queue, redis_url: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--queue", queue.name, "--redis", redis_url]
    assert email_cli(["email", "suppress", "add", "x@example.com", "--reason", "spam trap",
                      *base]) == 0
    assert email_cli(["email", "suppress", "list", "--json", *base]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out[out.index("["):])
    assert rows[0]["address"] == "x@example.com" and rows[0]["reason"] == "spam trap"
    assert email_cli(["email", "suppress", "remove", "x@example.com", *base]) == 0
    assert email_cli(["email", "suppress", "remove", "x@example.com", *base]) == 1
    assert email_cli(["email", "dlq", "list", *base]) == 0
    assert "no dead-lettered mail" in capsys.readouterr().out
    queue.set_dead_letter_queue(f"{queue.name}-dlq")
    with Queue(f"{queue.name}-dlq", connection=redis_url) as dlq:  # an entry, as written
        dlq.add("email", {"queue": queue.name, "job_id": "mail-x",  # when mail-x failed
                          "data": {"to": ["a@example.com"], "text": "x", "mail_uid": "x"},
                          "opts": {"attempts": 2}, "failed_reason": "554 no",
                          "stacktrace": [], "attempts_made": 1, "failed_at": 1767225600000,
                          "kind": "unrecoverable"})
    assert email_cli(["email", "dlq", "list", *base]) == 0
    assert "mail-x\tfail\tto a@example.com\t554 no" in capsys.readouterr().out
    assert email_cli(["email", "dlq", "replay", "mail-x", *base]) == 0
    assert "replayed as job mail-x-r1" in capsys.readouterr().out
    job = queue.get_job("mail-x-r1")
    assert job is not None and job.attempts == 2
    assert email_cli(["email", "dlq", "replay", "--all", *base]) == 1


async def test_demo(redis_url: str) -> None:
    out = io.StringIO()
    counts = await run_email_demo(redis_url, out)
    text = out.getvalue()
    assert counts["sent"] == 13 and counts["suppressed"] == 1 and counts["retried"] == 1
    assert counts["dead_lettered"] == 2 and counts["replayed"] == 1
    assert "Your login code" in text.split("Newsletter #1")[0]  # the OTP went first
