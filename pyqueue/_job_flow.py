"""The flow side of a job, shared by ``Job`` and ``AsyncJob``: its parent, its children's
results, step jobs (``move_to_waiting_children``) and durable steps (``step``, ``sleep``).

Durable steps are stored in the job's own hash, one field ``pqstep:<name>`` per
step (JSON), written only while the worker holds the job's lock; BullMQ ignores
these fields and they go when the job is removed.
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _ops
from . import _ops_flow as F
from . import _scripts as S
from ._keys import QueueKeys
from ._plan import Plan, cmd
from .errors import InvalidJobOptionsError, JobStateError
from .options import Duration, duration_ms, encode_json

if TYPE_CHECKING:
    from ._job_base import Binding

#: The hash field prefix of durable steps.
STEP_FIELD = "pqstep:"


def step_field(name: object) -> str:
    """The job hash field of step ``name`` (a non-empty str)."""
    if not isinstance(name, str) or not name:
        raise InvalidJobOptionsError(f"a step name must be a non-empty str, got {name!r}")
    return STEP_FIELD + name


class FlowPlans:
    """Plans of the flow operations of a job (mixed into ``JobBase``)."""

    _binding: Binding
    _token: str | None
    id: str
    fields: dict[str, str]

    @property
    def parent(self) -> dict[str, str] | None:
        """The parent of this job (``{"id": job_id, "queue": queue_name}``) or ``None``."""
        key = self.fields.get("parentKey")
        if not key:
            return None
        split = QueueKeys.parse_job_key(self._binding.keys.prefix, key)
        if split is None:
            return None
        queue, job_id = split
        return {"id": job_id, "queue": queue}

    @property
    def _job_key(self) -> str:
        return self._binding.keys.job(self.id)

    def _children_values_plan(self) -> Plan[dict[str, Any]]:
        (raw,) = yield [cmd("HGETALL", QueueKeys.flow_key(self._job_key, "processed"))]
        return {k: _ops.decode_json(v) for k, v in S.pairs_to_dict(raw).items()}

    def _ignored_failures_plan(self) -> Plan[dict[str, str]]:
        (raw,) = yield [cmd("HGETALL", QueueKeys.flow_key(self._job_key, "failed"))]
        return S.pairs_to_dict(raw)

    def _detach_plan(self) -> Plan[bool]:
        status = yield from _ops.simple(
            self._binding.clock, partial(S.remove_child_dependency, self._binding.keys,
                                         id=self.id),
            op="remove_child_dependency", job_id=self.id)
        if int(status) == 1:
            self.fields.pop("parentKey", None)
            self.fields.pop("parent", None)
            return True
        return False

    def _dependencies_plan(self) -> Plan[dict[str, Any]]:
        return F.dependencies_plan(self._job_key)

    def _dependencies_count_plan(self) -> Plan[dict[str, Any]]:
        return F.dependencies_plan(self._job_key, count_only=True)

    def _waiting_children_plan(self) -> Plan[bool]:
        if self._token is None:
            raise JobStateError("move_to_waiting_children() works only inside the job's "
                                "processor (the worker's lock is needed)", self.id)
        status = yield from _ops.simple(
            self._binding.clock, partial(S.move_to_waiting_children, self._binding.keys,
                                         id=self.id, lock_token=self._token),
            op="move_to_waiting_children", job_id=self.id)
        if int(status) == 1:
            self._token = None  # the worker must not finish it: it waits for its children
            return True
        return False

    def _stored_step(self, name: str) -> tuple[bool, Any]:
        """(found, value) of a durable step already done in an earlier run."""
        raw = self.fields.get(step_field(name))
        if raw is None:
            return False, None
        return True, json.loads(raw)

    def _save_step_plan(self, name: str, value: Any) -> Plan[None]:
        field = step_field(name)
        if self._token is None:
            raise JobStateError("steps run only inside the job's processor (the worker's "
                                "lock is needed)", self.id)
        encoded = encode_json(value, f"step {name!r} result")
        yield from _ops.simple(
            self._binding.clock, partial(S.save_step, self._binding.keys, id=self.id,
                                         lock_token=self._token, name=name, value=encoded),
            op="step", job_id=self.id)
        self.fields[field] = encoded

    def _sleep_due(self, name: str, seconds: Duration) -> tuple[int | None, bool]:
        """(due ms, whether it must be saved) of a sleep step; ``None``: it has passed."""
        found, stored = self._stored_step(name)
        now = self._binding.clock.now_ms()
        if found:
            due = int(stored.get("until", 0)) if isinstance(stored, dict) else 0
            return (None, False) if now >= due else (due, False)
        ms = duration_ms(seconds, "seconds")
        return (now + ms if ms > 0 else None), ms > 0
