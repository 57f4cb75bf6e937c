"""Job options: validated once at the boundary, encoded in BullMQ's format.

Users pass snake_case options in seconds (``add(..., delay=60)``); Redis
stores BullMQ's camelCase ``opts`` JSON in milliseconds. Every check happens
here, before anything is written, and every error names the option and the
value it got.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import backoff as _backoff
from ._duration import MAX_DURATION_SECONDS as MAX_DURATION_SECONDS  # re-exported
from ._duration import duration_ms as duration_ms
from ._job_options import AddOptions as AddOptions  # the typed shapes, re-exported
from ._job_options import BackoffOptions as BackoffOptions
from ._job_options import BulkJob as BulkJob
from ._job_options import DeduplicationOptions as DeduplicationOptions
from ._job_options import Duration as Duration
from ._job_options import JobOptions as JobOptions
from ._job_options import KeepJobs as KeepJobs
from ._job_options import ParentRef as ParentRef
from ._job_options import RepeatOptions as RepeatOptions
from ._jsontext import MAX_JSON_DEPTH as MAX_JSON_DEPTH  # re-exported
from ._jsontext import encode_json as encode_json
from ._jsontext import encode_json_sized
from ._keys import check_job_id
from ._options_links import FAILURE_POLICIES as FAILURE_POLICIES
from ._options_links import POLICY_OPTIONS, encode_telemetry
from ._options_links import failure_policy as failure_policy
from .errors import (
    ConfigurationError,
    InvalidJobIdError,
    InvalidJobOptionsError,
    PayloadTooLargeError,
)

MAX_PRIORITY = 2**21 - 1
DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024
KNOWN_OPTIONS = frozenset(JobOptions.__annotations__)


def utf8_text(value: str, option: str, error: type[ConfigurationError]) -> str:
    """``value`` if it encodes as UTF-8 (no lone surrogates), else ``error``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(f"{option} must be valid Unicode text: {exc.reason} at position "
                    f"{exc.start} of {value!r}") from None
    return value


def _int(value: object, option: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJobOptionsError(
            f"{option} must be an integer, got {type(value).__name__}: {value!r}"
        )
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise InvalidJobOptionsError(f"{option} must be >= {minimum}{upper}, got {value!r}")
    return value


def validate_priority(value: object) -> int:
    """A job priority: an int from 0 (none) to ``MAX_PRIORITY``; else ``InvalidJobOptionsError``."""
    return _int(value, "priority", minimum=0, maximum=MAX_PRIORITY)


def validate_job_id(job_id: object) -> str:
    """A custom job id: a non-empty str, not all digits, without ``:``."""
    if not isinstance(job_id, str):
        raise InvalidJobIdError(
            f"job_id must be a str, got {type(job_id).__name__}: {job_id!r}"
        )
    if not job_id:
        raise InvalidJobIdError("job_id must not be empty")
    if job_id.isdigit():
        raise InvalidJobIdError(
            f"job_id must not be all digits (those are auto ids), got {job_id!r}"
        )
    if ":" in job_id:
        raise InvalidJobIdError(f"job_id must not contain ':', got {job_id!r}")
    return utf8_text(check_job_id(job_id), "job_id", InvalidJobIdError)


MAX_GROUP_LENGTH = 256
#: deduplication modes: option -> (script mode, key in BullMQ's stored ``de``)
_DEDUP_MODES = {
    "extend": ("extend", "extend"),
    "replace": ("replace", "replace"),
    "reschedule": ("reschedule", "reschedule"),
    "keep_last_if_active": ("keepLast", "keepLastIfActive"),
}


def validate_group(group: object, option: str = "group") -> str:
    """A group id: a non-empty str of at most 256 characters, not ``*``."""
    if not isinstance(group, str):
        raise InvalidJobOptionsError(
            f"{option} must be a str, got {type(group).__name__}: {group!r}"
        )
    if not group or len(group) > MAX_GROUP_LENGTH or group == "*":
        raise InvalidJobOptionsError(
            f"{option} must be 1..{MAX_GROUP_LENGTH} characters and not '*', got {group!r}"
        )
    return utf8_text(group, option, InvalidJobOptionsError)



@dataclass(frozen=True)
class Retention:
    """Resolved retention: keep at most ``count`` (-1 = all), drop older than ``age_ms``."""

    count: int = -1
    age_ms: int = 0


def parse_retention(value: object, option: str) -> tuple[Any, Retention]:
    """Validate a retention option; returns (BullMQ encoding, resolved form)."""
    if isinstance(value, bool):
        return value, Retention(count=0 if value else -1)
    if isinstance(value, int):
        count = _int(value, option, minimum=0)
        return count, Retention(count=count)
    if isinstance(value, Mapping):
        unknown = set(value) - {"age", "count"}
        if unknown:
            raise InvalidJobOptionsError(f"{option} has unknown keys {sorted(unknown)}")
        encoded: dict[str, int] = {}
        age_ms, count = 0, -1
        if value.get("age") is not None:
            age_ms = duration_ms(value["age"], f"{option}.age")
            encoded["age"] = age_ms // 1000  # BullMQ keeps age in seconds
        if value.get("count") is not None:
            count = _int(value["count"], f"{option}.count", minimum=0)
            encoded["count"] = count
        return encoded, Retention(count=count, age_ms=age_ms)
    raise InvalidJobOptionsError(
        f"{option} must be a bool, an int or {{'age': s, 'count': n}}, got {value!r}"
    )


def retention_from_opts(value: object) -> Retention | None:
    """Resolve a stored (BullMQ-encoded) retention option; ``None`` when unset."""
    if value is None:
        return None
    if isinstance(value, bool):
        return Retention(count=0 if value else -1)
    if isinstance(value, int | float):
        return Retention(count=max(int(value), 0))
    if isinstance(value, Mapping):
        age = value.get("age")
        count = value.get("count")
        return Retention(
            count=int(count) if isinstance(count, int | float) else -1,
            age_ms=int(age * 1000) if isinstance(age, int | float) else 0,
        )
    return None


@dataclass(frozen=True, slots=True)
class EncodedOptions:
    """Validated job options in BullMQ's encoding, and what the add script
    needs from them. A queue encodes its defaults once and reuses this for
    every job added without options of its own."""

    opts: str
    job_id: str = ""
    delay_ms: int = 0
    priority: int = 0
    lifo: bool = False
    dedup_id: str | None = None
    dedup_ttl_ms: int = 0
    dedup_mode: str | None = None
    group: str | None = None
    #: ``opts`` before JSON encoding; shared, never to be mutated.
    raw_opts: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class EncodedJob:
    """A validated job ready for the add script."""

    name: str
    data: str
    options: EncodedOptions
    value: Any = None  # the data as given (``data`` holds its JSON)


def merge_options(defaults: Mapping[str, Any] | None, opts: Mapping[str, Any]) -> dict[str, Any]:
    """Queue defaults overlaid by per-job options."""
    merged = dict(defaults or {})
    merged.update(opts)
    return merged


def encode_job(name: object, data: object, opts: Mapping[str, Any] | EncodedOptions,
               *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> EncodedJob:
    """Validate ``name``, ``data`` and ``opts`` (or take options encoded
    already) and encode them for Redis."""
    if not isinstance(name, str):
        raise InvalidJobOptionsError(
            f"job name must be a str, got {type(name).__name__}: {name!r}"
        )
    utf8_text(name, "job name", InvalidJobOptionsError)
    options = opts if isinstance(opts, EncodedOptions) else encode_options(opts)
    data_json, size = encode_json_sized(data, "data")
    if size > max_payload_bytes:
        raise PayloadTooLargeError(
            f"data is {size} bytes encoded, over the limit of {max_payload_bytes} bytes "
            "(max_payload_bytes)"
        )
    return EncodedJob(name, data_json, options, data)


def encode_options(opts: Mapping[str, Any]) -> EncodedOptions:
    """Validate job options and encode them in BullMQ's format."""
    unknown = set(opts) - KNOWN_OPTIONS
    if "repeat" in unknown:
        raise InvalidJobOptionsError(
            "repeat: use Queue.add(..., repeat=...) or upsert_job_scheduler(), not add_bulk"
        )
    if unknown:
        raise InvalidJobOptionsError(
            f"unknown job option(s) {sorted(unknown)}; known: {sorted(KNOWN_OPTIONS)}"
        )
    out: dict[str, Any] = {}
    attempts = 0  # BullMQ stores 0 when unset; it means one attempt
    if opts.get("attempts") is not None:
        attempts = _int(opts["attempts"], "attempts", minimum=1)
    job_id = ""
    if opts.get("job_id") is not None:
        job_id = validate_job_id(opts["job_id"])
        out["jobId"] = job_id
    priority = 0
    if opts.get("priority") is not None:
        priority = _int(opts["priority"], "priority", minimum=0, maximum=MAX_PRIORITY)
        if priority:
            out["priority"] = priority
    delay_ms = 0
    if opts.get("delay") is not None:
        delay_ms = duration_ms(opts["delay"], "delay")
        if delay_ms:
            out["delay"] = delay_ms
    lifo = opts.get("lifo", False)
    if not isinstance(lifo, bool):
        raise InvalidJobOptionsError(f"lifo must be a bool, got {lifo!r}")
    if lifo:
        out["lifo"] = True
    if opts.get("backoff") is not None:
        out["backoff"] = _backoff.encode(opts["backoff"])
    for option, bull in (("remove_on_complete", "removeOnComplete"),
                         ("remove_on_fail", "removeOnFail")):
        if opts.get(option) is not None:
            encoded, _ = parse_retention(opts[option], option)
            out[bull] = encoded
    dedup_id, dedup_ttl, dedup_mode = None, 0, None
    if opts.get("deduplication") is not None:
        dedup = opts["deduplication"]
        if not isinstance(dedup, Mapping) or not isinstance(dedup.get("id"), str) \
                or not dedup["id"]:
            raise InvalidJobOptionsError(
                f"deduplication must be {{'id': non-empty str, 'ttl': seconds}}, got {dedup!r}"
            )
        unknown_dedup = set(dedup) - {"id", "ttl", *_DEDUP_MODES}
        if unknown_dedup:
            raise InvalidJobOptionsError(
                f"deduplication has unknown keys {sorted(unknown_dedup)}"
            )
        dedup_id = utf8_text(dedup["id"], "deduplication.id", InvalidJobOptionsError)
        de: dict[str, Any] = {"id": dedup_id}
        if dedup.get("ttl") is not None:
            dedup_ttl = duration_ms(dedup["ttl"], "deduplication.ttl", allow_zero=False)
            de["ttl"] = dedup_ttl
        modes = []
        for mode in _DEDUP_MODES:
            flag = dedup.get(mode, False)
            if not isinstance(flag, bool):
                raise InvalidJobOptionsError(f"deduplication.{mode} must be a bool, got {flag!r}")
            if flag:
                modes.append(mode)
        if len(modes) > 1:
            raise InvalidJobOptionsError(f"deduplication: choose one of {modes}, not several")
        if modes:
            mode = modes[0]
            if mode == "extend" and not dedup_ttl:
                raise InvalidJobOptionsError("deduplication.extend needs a ttl")
            de[_DEDUP_MODES[mode][1]] = True
            dedup_mode = _DEDUP_MODES[mode][0]
        out["de"] = de
    if opts.get("timeout") is not None:
        out["pqTimeout"] = duration_ms(opts["timeout"], "timeout", allow_zero=False)
    group = None
    if opts.get("group") is not None:
        group = validate_group(opts["group"])
    if opts.get("keep_logs") is not None:
        out["kl"] = _int(opts["keep_logs"], "keep_logs", minimum=1)
    policy = failure_policy(opts)
    if policy is not None:
        out[policy] = True
    if opts.get("telemetry") is not None:
        out.update(encode_telemetry(opts["telemetry"]))
    out["attempts"] = attempts
    return EncodedOptions(
        opts=encode_json(out, "opts"),
        job_id=job_id,
        delay_ms=delay_ms,
        priority=priority,
        lifo=lifo,
        dedup_id=dedup_id,
        dedup_ttl_ms=dedup_ttl,
        dedup_mode=dedup_mode,
        group=group,
        raw_opts=out,
    )


def decode_options(stored: object) -> dict[str, Any]:
    """Stored (BullMQ-encoded) options back as ``add`` takes them: snake_case
    names, seconds. Unknown stored keys are left out."""
    if not isinstance(stored, Mapping):
        return {}
    out: dict[str, Any] = {}

    def seconds(value: Any) -> Any:
        return value / 1000 if isinstance(value, int | float) else value

    for key, value in stored.items():
        if key == "attempts":
            if value:
                out["attempts"] = value
        elif key == "backoff" and isinstance(value, Mapping):
            backoff = {"type": value.get("type", "fixed"), "delay": seconds(value.get("delay", 0))}
            if value.get("jitter"):
                backoff["jitter"] = value["jitter"]
            out["backoff"] = backoff
        elif key in ("priority", "lifo"):
            out[key] = value
        elif key == "delay":
            out["delay"] = seconds(value)
        elif key in ("removeOnComplete", "removeOnFail"):
            name = "remove_on_complete" if key == "removeOnComplete" else "remove_on_fail"
            out[name] = dict(value) if isinstance(value, Mapping) else value  # age in seconds
        elif key == "pqTimeout":
            out["timeout"] = seconds(value)
        elif key == "kl":
            out["keep_logs"] = value
        elif key in POLICY_OPTIONS and value is True:
            out[POLICY_OPTIONS[key]] = True
        elif key in ("tm", "omc"):
            telemetry = out.setdefault("telemetry", {})
            telemetry["metadata" if key == "tm" else "omit_context"] = value
        elif key == "de" and isinstance(value, Mapping):
            dedup: dict[str, Any] = {"id": value.get("id")}
            if value.get("ttl"):
                dedup["ttl"] = seconds(value["ttl"])
            for option, (_, stored_name) in _DEDUP_MODES.items():
                if value.get(stored_name):
                    dedup[option] = True
            out["deduplication"] = dedup
    return out

