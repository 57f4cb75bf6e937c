"""What an action did, said on the page it redirects to.

An action redirects with ``?done=<code>&n=<count>``; the page shows the fixed
sentence for that code. A URL cannot make the dashboard say anything else.
"""

from __future__ import annotations

from collections.abc import Mapping

MESSAGES = {
    "retried": "Job moved back to waiting.",
    "promoted": "Job promoted: it is waiting now.",
    "removed": "Job removed.",
    "locked": "The job is running (its worker holds the lock): cancel it instead.",
    "cancelled": "Job cancelled.",
    "priority": "Priority changed.",
    "delay": "Delay changed.",
    "cancel-requested": "Cancellation requested: the worker running it stops it shortly.",
    "finished": "The job has already finished: nothing to cancel.",
    "retried-all": "{n} job(s) moved back to waiting.",
    "promoted-all": "{n} delayed job(s) promoted.",
    "cleaned": "{n} job(s) removed.",
    "paused": "Queue paused: workers take no new jobs.",
    "resumed": "Queue resumed.",
    "drained": "Waiting jobs removed.",
    "bulk": "{n} job(s) done.",
    "scheduler-removed": "Job scheduler removed.",
    "limits": "Limits saved.",
    "obliterated": "Queue obliterated.",
}


def message_for(params: Mapping[str, str]) -> str | None:
    """The sentence for ``?done=<code>&n=<count>``, or ``None``."""
    template = MESSAGES.get(params.get("done", ""))
    if template is None:
        return None
    try:
        count = int(params.get("n", "0"))
    except ValueError:
        count = 0
    return template.format(n=count)
