"""Cron patterns behind job schedulers (``pyqueue._cron``): 5- and 6-field
patterns, time zones, daylight-saving gaps and overlaps, validation.

Times are fixed instants, so nothing here depends on the clock. A schedule
"every day at 09:00 Europe/Berlin" must stay at 09:00 local time: 08:00Z in
winter, 07:00Z in summer. On the spring-forward night a 02:30 job runs once,
at 03:00 local (the first valid time after the gap); on the fall-back night
it runs once (the first 02:30), not twice.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyqueue import InvalidJobOptionsError
from pyqueue._cron import first_at_or_after, next_after, validate


def ms(iso: str) -> int:
    """Epoch ms of an ISO-8601 instant (with its offset)."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def runs(pattern: str, tz: str | None, after: str, n: int) -> list[str]:
    """The next ``n`` firing instants (UTC, ISO) after ``after``."""
    out, cursor = [], ms(after)
    for _ in range(n):
        cursor = next_after(pattern, tz, cursor)
        out.append(iso(cursor))
    return out


# ------------------------------------------------------------------ 5 and 6 fields


def test_five_field_pattern_fires_on_whole_minutes_in_utc_by_default() -> None:
    assert runs("*/15 * * * *", None, "2026-01-10T10:07:31+00:00", 3) == [
        "2026-01-10T10:15:00Z", "2026-01-10T10:30:00Z", "2026-01-10T10:45:00Z"]
    assert runs("0 9 * * *", None, "2026-01-10T09:00:00+00:00", 2) == [
        "2026-01-11T09:00:00Z", "2026-01-12T09:00:00Z"]


def test_six_field_pattern_has_seconds_first() -> None:
    assert runs("*/2 * * * * *", None, "2026-01-10T00:00:00.500+00:00", 3) == [
        "2026-01-10T00:00:02Z", "2026-01-10T00:00:04Z", "2026-01-10T00:00:06Z"]
    # "30 0 9 * * *" = 09:00:30 every day, not minute 30
    assert runs("30 0 9 * * *", None, "2026-01-10T00:00:00+00:00", 2) == [
        "2026-01-10T09:00:30Z", "2026-01-11T09:00:30Z"]


def test_six_field_sub_second_precision_is_milliseconds() -> None:
    after = ms("2026-01-10T00:00:01.999+00:00")
    assert next_after("* * * * * *", None, after) == ms("2026-01-10T00:00:02+00:00")
    assert next_after("* * * * * *", None, after + 1) == ms("2026-01-10T00:00:03+00:00")


def test_weekday_month_and_lists() -> None:
    # 2026-01-05 is a Monday
    assert runs("0 9 * * 1", None, "2026-01-05T09:00:00+00:00", 2) == [
        "2026-01-12T09:00:00Z", "2026-01-19T09:00:00Z"]
    assert runs("0 9 * * MON-FRI", None, "2026-01-09T10:00:00+00:00", 2) == [
        "2026-01-12T09:00:00Z", "2026-01-13T09:00:00Z"]  # Friday -> Monday
    assert runs("0 0 1 */3 *", None, "2026-01-15T00:00:00+00:00", 2) == [
        "2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z"]
    assert runs("15,45 8 * * *", None, "2026-01-10T08:20:00+00:00", 3) == [
        "2026-01-10T08:45:00Z", "2026-01-11T08:15:00Z", "2026-01-11T08:45:00Z"]


def test_next_after_is_strictly_after_and_first_at_or_after_includes_the_instant() -> None:
    at = ms("2026-01-06T09:00:00+00:00")
    assert next_after("0 9 * * *", None, at) == ms("2026-01-07T09:00:00+00:00")
    assert first_at_or_after("0 9 * * *", None, at) == at
    assert first_at_or_after("0 9 * * *", None, at + 1) == ms("2026-01-07T09:00:00+00:00")


# ------------------------------------------------------------------ time zones


def test_nine_am_berlin_is_0800z_in_winter_and_0700z_in_summer() -> None:
    assert runs("0 9 * * *", "Europe/Berlin", "2026-01-10T00:00:00+00:00", 1) == [
        "2026-01-10T08:00:00Z"]
    assert runs("0 9 * * *", "Europe/Berlin", "2026-07-10T00:00:00+00:00", 1) == [
        "2026-07-10T07:00:00Z"]
    # across the spring change the local time stays 09:00
    assert runs("0 9 * * *", "Europe/Berlin", "2026-03-28T00:00:00+00:00", 3) == [
        "2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z", "2026-03-30T07:00:00Z"]


def test_other_zones() -> None:
    assert runs("0 9 * * *", "America/New_York", "2026-01-10T00:00:00+00:00", 1) == [
        "2026-01-10T14:00:00Z"]
    assert runs("0 9 * * *", "America/New_York", "2026-07-10T00:00:00+00:00", 1) == [
        "2026-07-10T13:00:00Z"]
    # half-hour offset, no DST
    assert runs("0 9 * * *", "Asia/Kolkata", "2026-01-10T00:00:00+00:00", 1) == [
        "2026-01-10T03:30:00Z"]
    assert runs("0 9 * * *", "UTC", "2026-01-10T00:00:00+00:00", 1) == ["2026-01-10T09:00:00Z"]


def test_weekday_is_evaluated_in_the_schedule_time_zone() -> None:
    # Monday 00:30 in Tokyo is Sunday 15:30Z
    assert runs("30 0 * * 1", "Asia/Tokyo", "2026-01-05T00:00:00+00:00", 1) == [
        "2026-01-11T15:30:00Z"]


# ------------------------------------------------------------------ DST gap and overlap


@pytest.mark.parametrize(("tz", "before", "expected"), [
    # Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 03:00 CEST = 01:00Z
    ("Europe/Berlin", "2026-03-28T12:00:00+00:00",
     ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"]),
    # New York: 2026-03-08 02:00 EST -> 03:00 EDT; 03:00 EDT = 07:00Z
    ("America/New_York", "2026-03-07T12:00:00+00:00",
     ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]),
])
def test_spring_forward_gap_runs_once_at_the_first_valid_time(
        tz: str, before: str, expected: list[str]) -> None:
    got = runs("30 2 * * *", tz, before, 3)
    assert got == expected
    assert len(set(got)) == 3


@pytest.mark.parametrize(("tz", "pattern", "before", "expected"), [
    # Berlin: 2026-10-25 03:00 CEST -> 02:00 CET; 02:30 happens at 00:30Z and 01:30Z
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00+00:00",
     ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"]),
    # New York: 2026-11-01 02:00 EDT -> 01:00 EST; 01:30 happens at 05:30Z and 06:30Z
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00:00+00:00",
     ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"]),
])
def test_fall_back_overlap_runs_once_not_twice(
        tz: str, pattern: str, before: str, expected: list[str]) -> None:
    assert runs(pattern, tz, before, 3) == expected


def test_fall_back_second_occurrence_is_not_picked_when_starting_inside_the_overlap() -> None:
    # After the first 02:30 (00:30Z) but before the second one (01:30Z): next is the
    # following day, not the repeated wall-clock time.
    after = ms("2026-10-25T00:45:00+00:00")
    assert iso(next_after("30 2 * * *", "Europe/Berlin", after)) == "2026-10-26T01:30:00Z"


def test_hourly_pattern_through_the_spring_gap_skips_only_the_missing_hour() -> None:
    # Berlin 2026-03-29: local 02:00 does not exist; every real hour still gets one run
    assert runs("0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00+00:00", 4) == [
        "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z",
        "2026-03-29T03:00:00Z"]


@pytest.mark.parametrize(("pattern", "tz", "after", "expected"), [
    ("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00+00:00",
     ["2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"]),
    ("*/30 * * * *", "Europe/Berlin", "2026-10-25T00:00:00+00:00",
     ["2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z",
      "2026-10-25T02:00:00Z"]),
    ("0 * * * *", "America/New_York", "2026-11-01T04:30:00+00:00",
     ["2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"]),
])
def test_wildcard_hour_patterns_keep_running_through_the_repeated_hour(
        pattern: str, tz: str, after: str, expected: list[str]) -> None:
    assert runs(pattern, tz, after, len(expected)) == expected


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("pattern", [
    "", "   ", "* * *", "* * * *", "* * * * * * *", "61 * * * *", "* 25 * * *",
    "a b c d e", "0 9 * * 8x", 5, None, ["0", "9", "*", "*", "*"],
])
def test_invalid_patterns_raise(pattern: object) -> None:
    with pytest.raises(InvalidJobOptionsError):
        validate(pattern)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "Europe/Nowhere", 3, "../etc/passwd"])
def test_invalid_time_zones_raise(tz: object) -> None:
    with pytest.raises(InvalidJobOptionsError):
        validate("0 9 * * *", tz)  # type: ignore[arg-type]
    with pytest.raises(InvalidJobOptionsError):
        next_after("0 9 * * *", tz, 0)  # type: ignore[arg-type]


def test_valid_patterns_are_returned_unchanged() -> None:
    for pattern in ("0 9 * * *", "*/2 * * * * *", "0 0 1 1 *", "5 4 * * SUN"):
        assert validate(pattern, "Europe/Berlin") == pattern


# ------------------------------------------------------------------ properties

_field = st.one_of(
    st.just("*"),
    st.integers(1, 15).map(lambda n: f"*/{n}"),
)


@st.composite
def simple_patterns(draw: st.DrawFn) -> str:
    second = draw(st.one_of(st.just(None), st.integers(0, 59).map(str), _field))
    minute = draw(st.one_of(st.integers(0, 59).map(str), _field))
    hour = draw(st.one_of(st.integers(0, 23).map(str), st.just("*")))
    dom = draw(st.one_of(st.just("*"), st.integers(1, 28).map(str)))
    dow = draw(st.one_of(st.just("*"), st.integers(0, 6).map(str)))
    fields = [minute, hour, dom, "*", dow]
    if second is not None:
        fields.insert(0, second)
    return " ".join(fields)


@settings(max_examples=60, deadline=None)
@given(pattern=simple_patterns(),
       tz=st.sampled_from([None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
       after=st.integers(ms("2025-01-01T00:00:00+00:00"), ms("2030-01-01T00:00:00+00:00")))
def test_next_after_is_strictly_increasing(pattern: str, tz: str | None, after: int) -> None:
    validate(pattern, tz)
    cursor = after
    for _ in range(4):
        nxt = next_after(pattern, tz, cursor)
        assert nxt > cursor
        assert nxt % 1000 == 0  # cron fires on whole seconds
        cursor = nxt
