"""``enqueue_batch``: a campaign split into one mail job per recipient.

Every recipient's job is validated before anything is written, then the jobs
are added ``chunk`` at a time (one round trip each). Each job's ``mail_uid``
is ``<campaign>-<digest of the address>``, so enqueueing the same campaign
again (after a crash half-way, say) adds only the recipients that are
missing, and no address appears in a job id or a Message-ID. By default
mail is bulk (priority 100, after every transactional mail) and grouped by
the recipient's domain, so per-domain limits and round-robin apply
(docs/groups.md). With ``flow=True`` the campaign is a flow: a parent job that
completes when every mail is done, returning a summary (``campaign``).
"""

from __future__ import annotations

import re
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, overload

from ..job import AsyncJob, Job
from ..queue import AsyncQueue, Queue
from . import campaign as _campaign
from .enqueue import JOB_NAME, build_job
from .message import bare_address
from .suppressions import address_digest

_CAMPAIGN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,63}$")


def batch_jobs(recipients: Iterable[str | Mapping[str, Any]], *, campaign: str,
               queue_defaults: Mapping[str, Any] | None = None,
               **mail: Any) -> list[dict[str, Any]]:
    """The ``add_bulk`` entries of a campaign (no I/O); ``ValueError`` naming the
    first bad recipient. A recipient is an address, or a mapping with ``to`` and
    optionally ``variables`` (merged over the campaign's) and ``user_id``."""
    if not isinstance(campaign, str) or not _CAMPAIGN.match(campaign):
        raise ValueError(f"campaign must be 1-64 of A-Z a-z 0-9 . _ = - (starting with a "
                         f"letter or digit), got {campaign!r}")
    if "to" in mail or "mail_uid" in mail:
        raise ValueError("enqueue_batch takes recipients and a campaign, not to= or mail_uid=")
    mail.setdefault("category", "bulk")
    mail.setdefault("group_by_domain", True)
    shared = dict(mail.pop("variables", None) or {})
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, recipient in enumerate(recipients):
        extra: dict[str, Any] = {}
        if isinstance(recipient, Mapping):
            unknown = set(recipient) - {"to", "variables", "user_id"}
            if unknown:
                raise ValueError(f"recipient {i}: unknown keys {sorted(unknown)}")
            to = recipient.get("to")
            if recipient.get("variables") is not None:
                extra["variables"] = {**shared, **dict(recipient["variables"])}
            if recipient.get("user_id") is not None:
                extra["user_id"] = recipient["user_id"]
        else:
            to = recipient
        if not isinstance(to, str):
            raise ValueError(f"recipient {i}: 'to' must be one address (a str)")
        if "variables" not in extra and shared:
            extra["variables"] = shared
        try:
            data, opts = build_job(to=to, mail_uid="pending", queue_defaults=queue_defaults,
                                   **mail, **extra)
        except ValueError as exc:
            raise ValueError(f"recipient {i}: {exc}") from None
        key = bare_address(data["to"][0])
        if key in seen:
            continue  # the same person twice in one list: one mail
        seen.add(key)
        uid = f"{campaign}-{address_digest(key)[:24]}"
        data["mail_uid"] = uid
        opts["job_id"] = f"mail-{uid}"
        entries.append({"name": JOB_NAME, "data": dict(data), "opts": opts})
    return entries


@overload
def enqueue_batch(queue: Queue, recipients: Iterable[str | Mapping[str, Any]], *,
                  campaign: str, chunk: int = ..., flow: bool = ...,
                  seal_after: float = ..., **mail: Any) -> list[Job]: ...


@overload
def enqueue_batch(queue: AsyncQueue, recipients: Iterable[str | Mapping[str, Any]], *,
                  campaign: str, chunk: int = ..., flow: bool = ...,
                  seal_after: float = ...,
                  **mail: Any) -> Coroutine[Any, Any, list[AsyncJob]]: ...


def enqueue_batch(queue: Queue | AsyncQueue, recipients: Iterable[str | Mapping[str, Any]], *,
                  campaign: str, chunk: int = 500, flow: bool = False,
                  seal_after: float = _campaign.SEAL_AFTER,
                  **mail: Any) -> list[Job] | Coroutine[Any, Any, list[AsyncJob]]:
    """Enqueue one mail per recipient of a campaign; returns the jobs (a coroutine
    for an ``AsyncQueue``). ``mail`` takes ``enqueue_email``'s keywords (``subject``,
    ``text``, ``html``, ``template``, ``variables``, ``category`` (default
    ``"bulk"``), ``group_by_domain`` (default ``True``), job options...).

    ``flow=True``: the mails are the children of a campaign parent job
    (``campaign_job_id(campaign)``, in the same queue) that an ``EmailWorker``
    completes once every mail is done, with a summary (sent, suppressed,
    dropped, failed); ``seal_after`` seconds bound how long an enqueue that died
    half-way holds it back (see ``pyqueue.email.campaign``)."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
    if not isinstance(flow, bool):
        raise ValueError(f"flow must be a bool, got {flow!r}")
    seal = _campaign.check_seal_after(seal_after)
    core = getattr(queue, "_core", None)
    defaults = core.default_job_options if core is not None else {}
    entries = batch_jobs(recipients, campaign=campaign, queue_defaults=defaults, **mail)
    parts = [entries[i:i + chunk] for i in range(0, len(entries), chunk)]
    if isinstance(queue, AsyncQueue):
        if flow:
            return _campaign.enqueue_flow_async(queue, parts, campaign, seal, defaults)
        async_queue = queue

        async def add_all() -> list[AsyncJob]:
            added: list[AsyncJob] = []
            for part in parts:
                added += await async_queue.add_bulk(part)
            return added
        return add_all()
    if flow:
        return _campaign.enqueue_flow(queue, parts, campaign, seal, defaults)
    jobs: list[Job] = []
    for part in parts:
        jobs += queue.add_bulk(part)
    return jobs
