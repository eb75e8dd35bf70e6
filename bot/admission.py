"""The limits that stop enumeration, as pure rules: which counter a look-up takes a unit
of, in which fixed window, and when that window ends.

Fixed windows (10 minutes, one day in Indonesian western time) let a counter be one row
that one upsert counts and admits in, atomically on both databases. The price is that up
to twice a limit can pass across a window boundary; the daily limit bounds that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Days start at midnight WIB (UTC+7), where most people live: "try again tomorrow"
# then means what it says for them.
_DAY_OFFSET = timedelta(hours=7)
GLOBAL_WINDOW = timedelta(minutes=1)
DAY = timedelta(days=1)
# The service-wide ceiling is split over a few counter rows, so concurrent look-ups do
# not all queue on one row lock.
GLOBAL_SHARDS = 8
# The counter of names that did not match, per NIK.
NIK_FAILURES = "nik-fail"


@dataclass(frozen=True, slots=True)
class LookupLimits:
    short_limit: int  # look-ups per address per short window
    short_window: timedelta
    per_day: int  # look-ups per address per day
    name_failures_per_nik: int  # look-ups without a match per NIK per day
    global_per_minute: int  # look-ups by everyone together


@dataclass(frozen=True, slots=True)
class Counter:
    """One unit of one limit: the row an admission increments and a give-back decrements."""

    scope: str
    key: str
    window_start: datetime
    limit: int
    window_end: datetime


def window_start(now: datetime, length: timedelta, offset: timedelta = timedelta(0)) -> datetime:
    """The start of the fixed window of `length` holding `now`; `offset` shifts the grid
    (a day that starts at local midnight)."""
    shifted = now - _EPOCH + offset
    return now - (shifted % length)


def counter(
    scope: str, key: str, limit: int, now: datetime, length: timedelta, offset: timedelta
) -> Counter:
    start = window_start(now, length, offset)
    return Counter(scope, key, start, limit, start + length)


def address_counters(limits: LookupLimits, address_hash: str, now: datetime) -> list[Counter]:
    return [
        counter("addr-short", address_hash, limits.short_limit, now, limits.short_window, _ZERO),
        daily_counter("addr-day", address_hash, limits.per_day, now),
    ]


def nik_counter(limits: LookupLimits, nik_hash: str, now: datetime) -> Counter:
    return daily_counter(NIK_FAILURES, nik_hash, limits.name_failures_per_nik, now)


def daily_counter(scope: str, key: str, limit: int, now: datetime) -> Counter:
    """A counter of `limit` per day (days start at midnight WIB)."""
    return counter(scope, key, limit, now, DAY, _DAY_OFFSET)


def global_counter(limits: LookupLimits, shard: int, now: datetime) -> Counter:
    """Shard `shard` of the ceiling; the shards' limits add up to the ceiling exactly."""
    shards = min(GLOBAL_SHARDS, limits.global_per_minute)
    share = limits.global_per_minute // shards + (
        1 if shard % shards < limits.global_per_minute % shards else 0
    )
    return counter("global", f"shard-{shard % shards}", share, now, GLOBAL_WINDOW, _ZERO)


def seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))


_ZERO = timedelta(0)
