"""Prometheus metrics: what the code counts as it works, and what `/metrics` reads from the
database when it is scraped.

The counters live on a registry of this module's own, never prometheus_client's global one,
and always exist: code paths observe them whether or not anything is ever scraped. Labels
name outcomes, kinds and calls, a fixed few values each; never a phone number, chat id,
NIK or ticket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from bot.filings import FilingKind
from bot.lookup import LookupFailure, LookupOutcome, Throttled, ThrottleReason
from bot.storage.database import Database
from bot.storage.notice_repository import FAILED, GONE, HELD, SENT
from bot.storage.outbox_repository import OutboxRepository
from registry_client import (
    RegistryBadResponse,
    RegistryError,
    RegistryRejected,
    RegistryUnavailable,
)

log = logging.getLogger(__name__)

REGISTRY: Final = CollectorRegistry(auto_describe=True)

# Seconds; a USSD gateway gives up after a few, Telegram users after a few more.
_LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)

_USSD_REQUESTS: Final = Counter(
    "ussd_requests",
    "USSD requests answered, by outcome: the HTTP status, or error.",
    ["outcome"],
    registry=REGISTRY,
)
_USSD_SECONDS: Final = Histogram(
    "ussd_request_seconds",
    "Time to answer a USSD request.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
_TELEGRAM_UPDATES: Final = Counter(
    "telegram_updates",
    "Telegram updates handled, by outcome: ok or error.",
    ["outcome"],
    registry=REGISTRY,
)
_TELEGRAM_SECONDS: Final = Histogram(
    "telegram_update_seconds",
    "Time to handle a Telegram update, the reply sent.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
_LOOKUPS: Final = Counter(
    "lookups",
    "Status look-ups, by outcome: found, not_found, unavailable or throttled_<limit>.",
    ["outcome"],
    registry=REGISTRY,
)
_FILINGS: Final = Counter(
    "filings", "Filings accepted (queued for the registry), by kind.", ["kind"], registry=REGISTRY
)
_NOTICES: Final = Counter(
    "notices",
    "Quarterly notices finished, by outcome: sent, held (for USSD), retired or failed.",
    ["outcome"],
    registry=REGISTRY,
)
_REGISTRY_SECONDS: Final = Histogram(
    "registry_request_seconds",
    "Time of a registry call, retries included, by call.",
    ["call"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
_REGISTRY_ERRORS: Final = Counter(
    "registry_errors",
    "Registry calls that failed, by call and kind: unavailable, rejected or bad_response.",
    ["call", "kind"],
    registry=REGISTRY,
)

LookupLabel = Literal[
    "found",
    "not_found",
    "unavailable",
    "throttled_address",
    "throttled_nik",
    "throttled_busy",
]
NoticeOutcome = Literal["sent", "held", "retired", "failed"]
UpdateOutcome = Literal["ok", "error"]

_NOTICE_OUTCOMES: Final[dict[str, NoticeOutcome]] = {
    SENT: "sent",
    HELD: "held",
    GONE: "retired",
    FAILED: "failed",
}
_THROTTLED: Final[dict[ThrottleReason, LookupLabel]] = {
    ThrottleReason.ADDRESS: "throttled_address",
    ThrottleReason.NIK: "throttled_nik",
    ThrottleReason.BUSY: "throttled_busy",
}

# Every outcome shows from the start, at 0: a rate over a series that appears late is wrong.
for _outcome in get_args(LookupLabel):
    _LOOKUPS.labels(outcome=_outcome)
for _outcome in get_args(NoticeOutcome):
    _NOTICES.labels(outcome=_outcome)
for _outcome in get_args(UpdateOutcome):
    _TELEGRAM_UPDATES.labels(outcome=_outcome)


def observe_ussd_request(outcome: int | Literal["error"], seconds: float) -> None:
    """One USSD request answered with HTTP status `outcome`, or failed before answering."""
    _USSD_REQUESTS.labels(outcome=str(outcome)).inc()
    _USSD_SECONDS.observe(seconds)


def observe_telegram_update(outcome: UpdateOutcome, seconds: float) -> None:
    _TELEGRAM_UPDATES.labels(outcome=outcome).inc()
    _TELEGRAM_SECONDS.observe(seconds)


def lookup_label(outcome: LookupOutcome) -> LookupLabel:
    if isinstance(outcome, Throttled):
        return _THROTTLED[outcome.reason]
    if outcome is LookupFailure.NOT_FOUND:
        return "not_found"
    if outcome is LookupFailure.UNAVAILABLE:
        return "unavailable"
    return "found"


def observe_lookup(outcome: LookupOutcome) -> None:
    _LOOKUPS.labels(outcome=lookup_label(outcome)).inc()


def observe_filing(kind: FilingKind) -> None:
    _FILINGS.labels(kind=kind).inc()


def observe_notices(states: Iterable[str]) -> None:
    """Notices finished, by the state each was stored with."""
    for state in states:
        _NOTICES.labels(outcome=_NOTICE_OUTCOMES[state]).inc()


class RegistryCalls:
    """The registry client's observer: latency and errors per call."""

    def call_done(self, call: str, seconds: float, error: RegistryError | None) -> None:
        _REGISTRY_SECONDS.labels(call=call).observe(seconds)
        if error is not None:
            _REGISTRY_ERRORS.labels(call=call, kind=_error_kind(error)).inc()


def _error_kind(error: RegistryError) -> str:
    if isinstance(error, RegistryUnavailable):
        return "unavailable"
    if isinstance(error, RegistryRejected):
        return "rejected"
    if isinstance(error, RegistryBadResponse):
        return "bad_response"
    return "other"


@dataclass(frozen=True, slots=True)
class _Reading:
    """The gauges of one scrape; None where the database did not answer in time."""

    outbox_depth: int | None
    outbox_dead: int | None
    oldest_undelivered_s: float | None
    pool_checked_out: int | None
    pool_size: int | None


class MetricsPage:
    """Renders `/metrics`: the counters, and gauges read from the database right now, within
    `timeout_s` (a slow database leaves them out rather than holding up the scrape)."""

    def __init__(
        self, database: Database, clock: Callable[[], datetime], *, timeout_s: float = 2.0
    ) -> None:
        self._database = database
        self._clock = clock
        self._timeout_s = timeout_s

    async def exposition(self) -> bytes:
        """The text format of every metric, for `CONTENT_TYPE_LATEST`."""
        return generate_latest(_Collector(await self._read()))

    async def _read(self) -> _Reading:
        # The pool first: the outbox query below takes a connection of its own.
        pool = self._database.engine.pool
        checked_out, size = (
            (pool.checkedout(), pool.size()) if isinstance(pool, QueuePool) else (None, None)
        )
        depth = dead = age = None
        try:
            async with asyncio.timeout(self._timeout_s), self._database.transaction() as session:
                status = await OutboxRepository(session).status()
        except (TimeoutError, SQLAlchemyError, OSError) as error:
            log.warning("metrics: the outbox could not be read: %s", type(error).__name__)
        else:
            depth, dead = status.depth, len(status.dead)
            oldest = status.oldest_undelivered
            age = 0.0 if oldest is None else max((self._clock() - oldest).total_seconds(), 0.0)
        return _Reading(depth, dead, age, checked_out, size)


class _Collector:
    """A prometheus_client collector: the module's registry plus one scrape's gauges."""

    def __init__(self, reading: _Reading) -> None:
        self._reading = reading

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        reading = self._reading
        gauges = (
            ("outbox_depth", "Filings not yet delivered to the registry.", reading.outbox_depth),
            ("outbox_dead", "Filings given up on (dead letters).", reading.outbox_dead),
            (
                "outbox_oldest_undelivered_seconds",
                "Age of the oldest filing not yet delivered; 0 when none waits.",
                reading.oldest_undelivered_s,
            ),
            (
                "db_pool_checked_out",
                "Database connections in use.",
                reading.pool_checked_out,
            ),
            ("db_pool_size", "Database connections the pool keeps.", reading.pool_size),
        )
        for name, documentation, value in gauges:
            if value is not None:
                yield GaugeMetricFamily(name, documentation, value=value)


def exposition() -> bytes:
    """The counters alone, for a web app that was given no database to read gauges from."""
    return generate_latest(REGISTRY)
