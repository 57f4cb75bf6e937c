"""A campaign as a flow (``enqueue_batch(..., flow=True)``): a campaign parent job
whose children are the per-recipient mails, and the summary it returns.

The parent (job ``campaign-<campaign>``, name ``email-campaign``) and a
*seal* child (``campaign-<campaign>-seal``, delayed by ``seal_after``) are
written first, in one script: the seal keeps the parent in
``waiting-children`` while the mails are added, ``chunk`` at a time, each
with ``ignore_dependency_on_failure`` (a failed mail is counted, it does not
hold the campaign back). Then the seal is removed, and the parent runs once
the last mail finished. Should the enqueuing process die half-way, running
``enqueue_batch`` again adds the missing mails (every id is derived from the
campaign), and without that the seal itself runs after ``seal_after`` and
releases the parent with what was added (the summary says ``incomplete``).

The ``EmailWorker`` of the queue runs the parent: it returns
:func:`summarise` of its children's return values and ignored failures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import JobStateError
from ..flow import AsyncFlowProducer, FlowProducer
from ..job import AsyncJob, Job
from ..queue import AsyncQueue, Queue
from .enqueue import PRIORITY_BULK

#: The job name of a campaign's parent.
CAMPAIGN_JOB = "email-campaign"
#: The job name of the child that holds a campaign open while it is enqueued.
SEAL_JOB = "email-campaign-seal"
#: Default ``seal_after``: seconds after which an unfinished enqueue releases
#: the campaign anyway.
SEAL_AFTER = 3600.0


def campaign_job_id(campaign: str) -> str:
    """The job id of campaign ``campaign``'s parent (in the mail queue)."""
    return f"campaign-{campaign}"


def _parent_tree(queue: str, campaign: str, seal_after: float) -> dict[str, Any]:
    parent_id = campaign_job_id(campaign)
    return {"name": CAMPAIGN_JOB, "queue_name": queue, "data": {"campaign": campaign},
            "opts": {"job_id": parent_id, "priority": PRIORITY_BULK},
            "children": [{"name": SEAL_JOB, "queue_name": queue,
                          "data": {"campaign": campaign},
                          "opts": {"job_id": f"{parent_id}-seal", "delay": seal_after}}]}


def _child_trees(queue: str, campaign: str,
                 entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    parent = {"id": campaign_job_id(campaign), "queue": queue}
    return [{"name": e["name"], "queue_name": queue, "data": e["data"],
             "opts": {**e["opts"], "parent": parent, "ignore_dependency_on_failure": True}}
            for e in entries]


def _check_open(campaign: str, state: str) -> None:
    if state != "waiting-children":
        raise JobStateError(f"campaign {campaign!r} has already run (its parent job is "
                            f"{state}); enqueue a new campaign name",
                            campaign_job_id(campaign))


def check_seal_after(seal_after: object) -> float:
    """``seal_after`` as seconds (> 0), else ``ValueError``."""
    if isinstance(seal_after, bool) or not isinstance(seal_after, int | float) \
            or not seal_after > 0:
        raise ValueError(f"seal_after must be a number of seconds > 0, got {seal_after!r}")
    return float(seal_after)


def enqueue_flow(queue: Queue, entries: list[list[dict[str, Any]]], campaign: str,
                 seal_after: float, defaults: Mapping[str, Any]) -> list[Job]:
    """Write a checked campaign (``entries``: ``add_bulk`` chunks) as a flow
    (``defaults``: the queue's default job options)."""
    jobs: list[Job] = []
    with FlowProducer(connection=queue.client, prefix=queue.prefix,
                      queue_defaults={queue.name: defaults}) as flows:
        root = flows.add(_parent_tree(queue.name, campaign, seal_after))
        _check_open(campaign, root.job.get_state())
        for part in entries:
            jobs += [n.job for n in flows.add_bulk(_child_trees(queue.name, campaign, part))]
        queue.remove(f"{campaign_job_id(campaign)}-seal")
    return jobs


async def enqueue_flow_async(queue: AsyncQueue, entries: list[list[dict[str, Any]]],
                             campaign: str, seal_after: float,
                             defaults: Mapping[str, Any]) -> list[AsyncJob]:
    """:func:`enqueue_flow` for an ``AsyncQueue``."""
    jobs: list[AsyncJob] = []
    async with AsyncFlowProducer(connection=queue.client, prefix=queue.prefix,
                                 queue_defaults={queue.name: defaults}) as flows:
        root = await flows.add(_parent_tree(queue.name, campaign, seal_after))
        _check_open(campaign, await root.job.get_state())
        for part in entries:
            nodes = await flows.add_bulk(_child_trees(queue.name, campaign, part))
            jobs += [n.job for n in nodes]
        await queue.remove(f"{campaign_job_id(campaign)}-seal")
    return jobs


def summarise(campaign: str, values: Mapping[str, Any],
              ignored: Mapping[str, str]) -> dict[str, Any]:
    """A campaign parent's return value, from ``get_children_values()`` (each
    mail's result) and ``get_ignored_children_failures()`` (its failed mails):
    how many were sent, suppressed, dropped (a ``SendLimit``) and failed, and the
    failed mails' job ids. No address appears in it."""
    counts = {"sent": 0, "suppressed": 0, "dropped": 0, "failed": len(ignored)}
    incomplete = False
    for value in values.values():
        status = value.get("status") if isinstance(value, Mapping) else None
        if status == "sealed":
            incomplete = True  # the seal ran: the enqueue did not finish in time
        elif status in counts:
            counts[status] += 1
    failed = sorted(key.rsplit(":", 1)[-1] for key in ignored)
    return {"campaign": campaign, **counts, "total": sum(counts.values()),
            "failed_jobs": failed, "incomplete": incomplete}


async def run_campaign_job(job: AsyncJob) -> dict[str, Any]:
    """What an ``EmailWorker`` does with a campaign's parent and its seal."""
    campaign = str(job.data.get("campaign", "")) if isinstance(job.data, Mapping) else ""
    if job.name == SEAL_JOB:
        return {"status": "sealed", "campaign": campaign}
    values = await job.get_children_values()
    ignored = await job.get_ignored_children_failures()
    return summarise(campaign, values, ignored)
