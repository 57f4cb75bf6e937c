"""The only place that knows script names, KEYS order, ARGV packing and replies.

Every script in ``lua/`` receives the same KEYS (the queue's key set, in
``_keys.QUEUE_SUFFIXES`` order) and the same ARGV layout: the job-key base,
"now" in milliseconds, and a msgpack map of parameters. Each script has one
builder here (``add_job``, ``move_to_finished``, ``clean``...) taking that
map's fields as typed keyword parameters; callers never name a script.
Scripts signal failures with negative integers, mapped to exceptions by
:func:`check`.

The scripts' text, the library and how each is called are in :mod:`._lua`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import msgpack

from ._keys import QueueKeys
from ._lua import library_text, load, script_names
from ._plan import LUA, Command
from ._replies import (
    E_FAILED_CHILDREN,
    E_FLOW_ID_TAKEN,
    E_JOB_CORRUPT,
    E_JOB_MISSING,
    E_LOCK_MISMATCH,
    E_LOCK_MISSING,
    E_NOT_ACTIVE,
    E_PARENT_MISSING,
    E_PENDING_DEPS,
    E_QUEUE_BUSY,
    E_WRONG_STATE,
    FETCH_MAX_CONCURRENCY,
    FETCH_OK,
    FETCH_PAUSED,
    FETCH_RATE_LIMITED,
    FLOW_REFUSALS,
    check,
    decode_fetch,
    pairs_to_dict,
    text,
)
from ._resp_encode import encode_args

if TYPE_CHECKING:
    from .options import EncodedJob

#: The builders and types defined here, and re-exported (mypy --strict exports
#: no imported name by itself): the reply side (codes, check, decoders) and
#: the scripts' text are part of this door too.
__all__ = ["E_FAILED_CHILDREN", "E_FLOW_ID_TAKEN", "E_JOB_CORRUPT", "E_JOB_MISSING",
           "E_LOCK_MISMATCH", "E_LOCK_MISSING", "E_NOT_ACTIVE", "E_PARENT_MISSING",
           "E_PENDING_DEPS", "E_QUEUE_BUSY", "E_WRONG_STATE", "FETCH_MAX_CONCURRENCY", "FETCH_OK",
           "FETCH_PAUSED", "FETCH_RATE_LIMITED", "FLOW_REFUSALS", "FetchArgs", "FinishItem",
           "ReplayEntry", "SchedulerArgs", "add_flow", "add_job", "add_jobs", "cancel_job",
           "change_delay", "change_priority", "check", "check_send_limits", "clean",
           "decode_fetch", "decode_send_limits", "drain", "extend_locks", "fetch_args",
           "finish_item", "get_state", "group_counts", "job_args", "library_text", "load",
           "move_stalled_jobs_to_wait", "move_to_active", "move_to_finished",
           "move_to_waiting_children", "obliterate", "pack", "pairs_to_dict", "pause", "promote",
           "purge_dead_letters", "remove_child_dependency", "remove_job", "remove_job_scheduler",
           "replay_dead_letters", "reprocess_jobs", "retry_job", "save_step", "script_names",
           "set_global_limits", "set_group_limits", "shard_tokens", "text", "update_job",
           "update_job_scheduler", "upsert_job_scheduler"]

def pack(params: dict[str, Any]) -> bytes:
    """Pack script parameters; ``None`` values are left out (nil in Lua)."""
    packed: bytes = msgpack.packb({k: v for k, v in params.items() if v is not None})
    return packed


@cache
def _static(name: str, keys: QueueKeys, functions: bool) -> tuple[tuple[Any, ...], bytes, int]:
    """The words of a call that never change, and their RESP encoding
    (``FCALL function`` or ``EVALSHA sha``, then numkeys, keys and base)."""
    script = load(name)
    key_list = keys.all()
    words = (len(key_list), *key_list, keys.base)
    verb = ("FCALL", script.function) if functions else ("EVALSHA", script.sha)
    return words, encode_args((*verb, *words)), len(words) + 2


def _call(name: str, keys: QueueKeys, now_ms: int, params: dict[str, Any]) -> Command:
    """A call of script ``name`` on the queue ``keys`` at time ``now_ms``
    (``params`` is packed as it is, not copied)."""
    functions = LUA.functions
    words, head, head_count = _static(name, keys, functions)
    tail = (int(now_ms), pack(params))
    return Command((*words, *tail), script=load(name), head=head, head_count=head_count,
                   tail=tail, fcall=functions)


# --- one builder per script ------------------------------------------------------
# Each takes the queue's keys, "now" in ms and the ARGV[3] fields of the script
# (see its header in lua/) as typed keyword parameters; ``None`` means "absent".

#: moveToActive's fetch fields (``token``, ``lockMs``, ``n``, ``wname``, ``me``,
#: optionally ``lmax``/``ldur``), built by :func:`fetch_args`.
FetchArgs = dict[str, Any]
#: One finish of moveToFinished, built by :func:`finish_item`.
FinishItem = dict[str, Any]
#: upsertJobScheduler's fields, built by ``_schedule.upsert_params``
#: (id, name, data, opts, gid, every | pattern, tz, limit, startDate,
#: endDate, offset, repeat, nextMs).
SchedulerArgs = dict[str, Any]


def job_args(job: EncodedJob) -> dict[str, Any]:
    """addJob's fields for one job (see lua/addJob.lua)."""
    options = job.options
    params = {"id": options.job_id, "name": job.name, "data": job.data, "opts": options.opts,
              "delay": options.delay_ms, "priority": options.priority}
    if options.lifo:
        params["lifo"] = True
    if options.dedup_id is not None:
        params["deid"] = options.dedup_id
        params["dettl"] = options.dedup_ttl_ms
        if options.dedup_mode is not None:
            params["dmode"] = options.dedup_mode
    if options.group is not None:
        params["gid"] = options.group
    return params


def add_job(keys: QueueKeys, now_ms: int, job: EncodedJob, *, me: int | None) -> Command:
    """addJob for one job; replies ``[job_id, status]``."""
    params = job_args(job)
    params["me"] = me
    return _call("addJob", keys, now_ms, params)


def add_jobs(keys: QueueKeys, now_ms: int, jobs: Sequence[EncodedJob], *,
             me: int | None, each: bool = False) -> Command:
    """addJob for many jobs in one call; replies one ``[job_id, status]`` per job.
    ``each``: the jobs are separate callers' adds, and a Redis error in one job is
    that job's reply ``["", -1, message]`` (the others still go in)."""
    params: dict[str, Any] = {"me": me, "jobs": [job_args(job) for job in jobs]}
    if each:
        params["each"] = True
    return _call("addJob", keys, now_ms, params)


def add_flow(keys: QueueKeys, now_ms: int, *, nodes: list[dict[str, Any]],
             parent: tuple[str, str, str] | None, version: str, me: int | None) -> Command:
    """addFlow on the root's queue ``keys``: ``nodes`` in pre-order (see
    lua/addFlow.lua); ``parent`` is (key, id, queue base) of an existing parent
    of the root. Replies ``[status, id...]``."""
    params: dict[str, Any] = {"nodes": nodes, "ver": version, "me": me}
    if parent is not None:
        params["pk"], params["pid"], params["pqb"] = parent
    return _call("addFlow", keys, now_ms, params)


def move_to_waiting_children(keys: QueueKeys, now_ms: int, *, id: str,
                             lock_token: str | None) -> Command:
    """moveToWaitingChildren: replies 1 when the job now waits for its children."""
    return _call("moveToWaitingChildren", keys, now_ms, {"id": id, "lockToken": lock_token})


def remove_child_dependency(keys: QueueKeys, now_ms: int, *, id: str) -> Command:
    """removeChildDependency: replies 1 when the child left its parent's dependencies."""
    return _call("removeChildDependency", keys, now_ms, {"id": id})


def save_step(keys: QueueKeys, now_ms: int, *, id: str, lock_token: str | None, name: str,
              value: str) -> Command:
    """saveStep: store a durable step's JSON result in the job's hash (fenced)."""
    return _call("saveStep", keys, now_ms,
                 {"id": id, "lockToken": lock_token, "name": name, "value": value})


def cancel_job(keys: QueueKeys, now_ms: int, *, id: str, reason: str, remove: bool) -> Command:
    """cancelJob: replies 1 cancelled, 2 requested, 0 already finished."""
    return _call("cancelJob", keys, now_ms, {"id": id, "reason": reason, "remove": remove})


def check_send_limits(keys: QueueKeys, now_ms: int, *,
                      windows: Sequence[tuple[str, str, int, int]], member: str) -> Command:
    """checkSendLimits: ``windows`` of ``(rule, subject, max, window_ms)``; replies
    ``[0]`` (a slot taken in each) or ``[wait_ms, 1-based index of the full one]``."""
    return _call("checkSendLimits", keys, now_ms,
                 {"windows": [list(w) for w in windows], "member": member})


def decode_send_limits(reply: Any) -> tuple[int, int]:
    """``(wait_ms, index)`` from a checkSendLimits reply; ``(0, 0)`` when allowed."""
    if not reply or int(reply[0]) == 0:
        return 0, 0
    return int(reply[0]), int(reply[1])


def clean(keys: QueueKeys, now_ms: int, *, state: str, cutoff: int, limit: int) -> Command:
    """clean: removes up to ``limit`` jobs of ``state`` at or before ``cutoff``."""
    return _call("clean", keys, now_ms, {"state": state, "cutoff": cutoff, "limit": limit})


def drain(keys: QueueKeys, now_ms: int, *, delayed: bool, batch: int) -> Command:
    """drain: removes up to ``batch`` waiting (and delayed) jobs; 0 when done."""
    return _call("drain", keys, now_ms, {"delayed": delayed, "batch": batch})


def extend_locks(keys: QueueKeys, now_ms: int, *, ids: list[str], tokens: list[str],
                 lock_ms: int) -> Command:
    """extendLocks: replies the ids whose lock was lost."""
    return _call("extendLocks", keys, now_ms, {"ids": ids, "tokens": tokens, "lockMs": lock_ms})


def get_state(keys: QueueKeys, now_ms: int, *, id: str) -> Command:
    """getState: replies the job's state in BullMQ's words."""
    return _call("getState", keys, now_ms, {"id": id})


def group_counts(keys: QueueKeys, now_ms: int, *, per_group: bool) -> Command:
    """groupCounts: ``[ready, delayed(, rows)]`` of grouped jobs."""
    return _call("groupCounts", keys, now_ms, {"perGroup": per_group})


def move_stalled_jobs_to_wait(keys: QueueKeys, now_ms: int, *, max_stalled: int,
                              interval_ms: int) -> Command:
    """moveStalledJobsToWait: the queue's stalled check."""
    return _call("moveStalledJobsToWait", keys, now_ms,
                 {"maxStalled": max_stalled, "intervalMs": interval_ms})


def fetch_args(*, token: str, lock_ms: int, n: int, wname: str | None, me: int | None,
               limiter: tuple[int, int] | None) -> FetchArgs:
    """The fetch fields of moveToActive and moveToFinished (lua/includes/fetch.lua)."""
    params: FetchArgs = {"token": token, "lockMs": lock_ms, "n": n, "wname": wname, "me": me}
    if limiter is not None:
        params["lmax"], params["ldur"] = limiter
    return params


def move_to_active(keys: QueueKeys, now_ms: int, fetch: FetchArgs) -> Command:
    """moveToActive: hand out up to ``n`` jobs (``fetch`` is packed as it is)."""
    return _call("moveToActive", keys, now_ms, fetch)


def finish_item(*, id: str, lock_token: str | None, target: str, value: str,
                keep_count: int, keep_age_ms: int, stacktrace: str | None = None,
                exhausted: bool | None = None, dead_letter: str | None = None) -> FinishItem:
    """One finish of moveToFinished (``target`` is "completed" or "failed");
    ``dead_letter`` (a failure for good: its kind) copies the job into the
    queue's dead-letter queue, if it has one."""
    item: FinishItem = {"id": id, "lockToken": lock_token, "target": target, "value": value}
    if stacktrace is not None:
        item["stacktrace"] = stacktrace
    item["keepCount"], item["keepAgeMs"] = keep_count, keep_age_ms
    if exhausted is not None:
        item["exhausted"] = exhausted
    if dead_letter is not None:
        item["dl"] = dead_letter
    return item


def move_to_finished(keys: QueueKeys, now_ms: int, *, items: list[FinishItem],
                     fetch: FetchArgs | None, me: int | None,
                     metrics_points: int | None = None) -> Command:
    """moveToFinished for ``items``, then a fetch of more jobs when ``fetch`` is
    given (that dict is completed and packed, not copied). ``metrics_points``:
    also count the finishes in BullMQ's metrics, keeping that many minutes."""
    params: dict[str, Any] = {} if fetch is None else fetch
    params["items"] = items
    if fetch is not None:
        params["fetch"] = True
    params["me"] = me
    if metrics_points is not None:
        params["mdp"] = metrics_points
    return _call("moveToFinished", keys, now_ms, params)


def obliterate(keys: QueueKeys, now_ms: int, *, force: bool, batch: int) -> Command:
    """obliterate: removes up to ``batch`` keys of the queue; 0 when done."""
    return _call("obliterate", keys, now_ms, {"force": force, "batch": batch})


def pause(keys: QueueKeys, now_ms: int, *, pause: bool) -> Command:
    """pause: pause (True) or resume (False) the queue."""
    return _call("pause", keys, now_ms, {"pause": pause})


def change_priority(keys: QueueKeys, now_ms: int, *, id: str, priority: int) -> Command:
    """changePriority: a waiting or delayed job's new priority."""
    return _call("changePriority", keys, now_ms, {"id": id, "priority": priority})


def change_delay(keys: QueueKeys, now_ms: int, *, id: str, delay_ms: int) -> Command:
    """changeDelay: a delayed job due ``delay_ms`` from now; replies the due time (ms)."""
    return _call("changeDelay", keys, now_ms, {"id": id, "delayMs": delay_ms})


def promote(keys: QueueKeys, now_ms: int, *, id: str | None = None,
            batch: int | None = None) -> Command:
    """promote: one delayed job (``id``), or up to ``batch`` of them."""
    return _call("promote", keys, now_ms, {"id": id, "batch": batch})


def remove_job(keys: QueueKeys, now_ms: int, *, id: str) -> Command:
    """removeJob: replies 1 when removed."""
    return _call("removeJob", keys, now_ms, {"id": id})


def remove_job_scheduler(keys: QueueKeys, now_ms: int, *, id: str) -> Command:
    """removeJobScheduler: replies 1 when removed."""
    return _call("removeJobScheduler", keys, now_ms, {"id": id})


def reprocess_jobs(keys: QueueKeys, now_ms: int, *, state: str, id: str | None = None,
                   count: int | None = None, reset_attempts: bool | None = None) -> Command:
    """reprocessJobs: run finished jobs of ``state`` again (one with ``id``)."""
    return _call("reprocessJobs", keys, now_ms,
                 {"state": state, "id": id, "count": count, "resetAttempts": reset_attempts})


#: One entry of replayDeadLetters, built by ``_ops_dlq``: id, ts, name, data,
#: opts, priority, lifo, gid, delay.
ReplayEntry = dict[str, Any]


def purge_dead_letters(keys: QueueKeys, now_ms: int, *,
                       entries: list[tuple[str, str]]) -> Command:
    """purgeDeadLetters on the dead-letter queue ``keys``: delete the entries
    ``(id, timestamp)`` still there unchanged; replies how many."""
    return _call("purgeDeadLetters", keys, now_ms,
                 {"entries": [{"id": i, "ts": ts} for i, ts in entries]})


def replay_dead_letters(keys: QueueKeys, now_ms: int, *, dlq: str,
                        entries: list[ReplayEntry]) -> Command:
    """replayDeadLetters: move ``entries`` of dead-letter queue ``dlq`` back into
    the queue ``keys``; replies one new job id (or ``""``: skipped) per entry."""
    return _call("replayDeadLetters", keys, now_ms, {"dlq": dlq, "entries": entries})


def retry_job(keys: QueueKeys, now_ms: int, *, id: str, lock_token: str | None, due_ms: int,
              front: bool | None = None, count_attempt: bool | None = None,
              reason: str | None = None, stacktrace: str | None = None,
              undo_start: bool | None = None) -> Command:
    """retryJob: move an active job back to ready (``due_ms`` 0) or delayed."""
    return _call("retryJob", keys, now_ms,
                 {"id": id, "lockToken": lock_token, "dueMs": due_ms, "front": front,
                  "countAttempt": count_attempt, "reason": reason, "stacktrace": stacktrace,
                  "undoStart": undo_start})


def set_global_limits(keys: QueueKeys, now_ms: int, *, concurrency: int | None = None,
                      max: int | None = None, duration_ms: int | None = None) -> Command:
    """setGlobalLimits: ``None`` leaves a limit, 0 clears it."""
    return _call("setGlobalLimits", keys, now_ms,
                 {"concurrency": concurrency, "max": max, "durationMs": duration_ms})


def set_group_limits(keys: QueueKeys, now_ms: int, *, gid: str, concurrency: int | None = None,
                     max: int | None = None, duration_ms: int | None = None) -> Command:
    """setGroupLimits for group ``gid`` (``"*"``: the default of every group)."""
    return _call("setGroupLimits", keys, now_ms,
                 {"gid": gid, "concurrency": concurrency, "max": max, "durationMs": duration_ms})


def shard_tokens(keys: QueueKeys, now_ms: int, *, k: int, release: list[str], refund: int,
                 window: int, limiter: tuple[int, int] | None, lease_ms: int,
                 lease: str) -> Command:
    """shardTokens on a sharded queue's coordinator: ``[granted, wait_ms, flags, window,
    why]`` (see the script's header)."""
    lmax, ldur = limiter if limiter is not None else (None, None)
    return _call("shardTokens", keys, now_ms,
                 {"k": k, "release": release, "refund": refund, "window": window,
                  "lmax": lmax, "ldur": ldur, "leaseMs": lease_ms, "lease": lease})


def update_job(keys: QueueKeys, now_ms: int, *, id: str, lock_token: str | None,
               progress: str | None = None, data: str | None = None, log: str | None = None,
               keep_logs: int | None = None) -> Command:
    """updateJob: set ``progress`` or ``data`` (JSON text) or append a ``log`` line."""
    return _call("updateJob", keys, now_ms,
                 {"id": id, "lockToken": lock_token, "progress": progress, "data": data,
                  "log": log, "keepLogs": keep_logs})


def update_job_scheduler(keys: QueueKeys, now_ms: int, *, id: str, cur: str, opts: str,
                         next_ms: int | None) -> Command:
    """updateJobScheduler: create the iteration after ``cur``; replies 1 if created."""
    return _call("updateJobScheduler", keys, now_ms,
                 {"id": id, "cur": cur, "opts": opts, "nextMs": next_ms})


def upsert_job_scheduler(keys: QueueKeys, now_ms: int, params: SchedulerArgs) -> Command:
    """upsertJobScheduler: replies ``[pending job id, its ms]``."""
    return _call("upsertJobScheduler", keys, now_ms, params)
