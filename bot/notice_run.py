"""The quarterly run: ingest a quarter's change feed, then tell every subscriber once.

Ingest streams the feed page by page (constant memory); each page is joined with the
subscriptions inside the database and the feed cursor is saved in the same transaction,
so a run killed at any moment continues from the last page it stored. A notice is unique
per (subscription, quarter): never two.

Sending paces messages at a configured rate; Telegram's RetryAfter pauses every send;
a blocked bot or a vanished chat retires the subscription; network errors are retried.
A notice is recorded as sent once its small batch is done, so a SIGKILL can repeat at
most the batches in hand: `window` messages.

The notices of subscriptions a PKH facilitator holds go out as one digest per chat (in
parts, if long), its households' NIKs masked; each part is recorded as sent once
delivered, so a SIGKILL repeats at most one part of each digest in hand. A deactivated
facilitator's notices are not sent: they and their subscriptions are retired.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.crypto import KeyRing, SealBroken
from bot.dialogs.model import Reply
from bot.dialogs.notifications import (
    DigestHousehold,
    render_quarter_digest,
    render_quarter_notice,
)
from bot.filer_messages import outbound_seal_context
from bot.i18n import translator
from bot.metrics import observe_notices
from bot.nik import mask_nik
from bot.notifications import QuarterNotice
from bot.outbound import Delivery, DeliveryResult, OutboundPort
from bot.storage.database import Database
from bot.storage.notice_repository import (
    FAILED,
    GONE,
    HELD,
    SENT,
    DigestNotice,
    DueDigest,
    DueNotice,
    NoticeRepository,
    NoticeRunRepository,
    SubscriptionRepository,
)
from bot.storage.outbound_repository import HELD as MESSAGE_HELD
from bot.storage.outbound_repository import OutboundRepository
from bot.subscription_service import nik_seal_context, subscription_seal_context
from registry_client import RegistryClient
from registry_client.models import ChangesPage, StatusChange

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
MAX_ATTEMPTS = 5
BATCH_SECONDS = 0.2  # a batch holds what is sent in this time: the SIGKILL window


class Progress(Protocol):
    """Where a run reports how far it is (a progress bar on the command line)."""

    def stage(self, name: str, total: int | None) -> None: ...

    def advance(self, count: int) -> None: ...


class NoProgress:
    def stage(self, name: str, total: int | None) -> None:
        """Nothing to show."""

    def advance(self, count: int) -> None:
        """Nothing to show."""


@dataclass
class RunSummary:
    quarter: str
    changes_read: int = 0
    matched: int = 0
    sent: int = 0  # households told, one by one or in a facilitator's digest
    held: int = 0
    retired: int = 0
    failed: int = 0
    digests: int = 0  # messages sent to facilitators (a long digest is several)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"quarter {self.quarter}: {self.changes_read} changes read, {self.matched} matched",
            f"sent {self.sent}, held for USSD {self.held}, retired {self.retired}, "
            f"failed {self.failed} ({self.seconds:.1f} s)",
            f"facilitator digests: {self.digests} messages",
        ]


class Pacer:
    """Hands out send slots at `rate` per second; `pause` holds every sender back."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0

    async def turn(self) -> None:
        now = self._clock()
        slot = max(self._next, now)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def pause(self, seconds: float) -> None:
        self._next = max(self._next, self._clock() + seconds)


def change_json(change: StatusChange) -> str:
    """What a notice needs of a change: deciles, programmes gained and lost, the reason."""
    return _change_json(
        change.previous.decile,
        change.previous.programmes,
        change.current.decile,
        change.current.programmes,
        change.reason_code,
    )


# A million changes come in a few hundred shapes: word each shape once (bounded memory).
@functools.lru_cache(maxsize=4096)
def _change_json(
    before_decile: int,
    before: tuple[str, ...],
    after_decile: int,
    after: tuple[str, ...],
    reason_code: str | None,
) -> str:
    gained, lost = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    return json.dumps([before_decile, after_decile, gained, lost, reason_code])


def notice_from_json(quarter: str, change: str) -> QuarterNotice:
    before, after, gained, lost, reason = json.loads(change)
    return QuarterNotice(quarter, int(before), int(after), tuple(gained), tuple(lost), reason)


@dataclass
class _Batch:
    sent: list[tuple[int, str]] = field(default_factory=list)
    retire: list[int] = field(default_factory=list)
    held: list[DueNotice] = field(default_factory=list)


class NoticeRun:
    def __init__(
        self,
        database: Database,
        keys: KeyRing,
        registry: RegistryClient,
        ports: Mapping[str, OutboundPort],
        *,
        held_channels: frozenset[str],
        clock: Callable[[], datetime],
        rate: float,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self._database = database
        self._keys = keys
        self._registry = registry
        self._ports = dict(ports)
        self._held_channels = held_channels
        # A process sends only what it can deliver; the rest waits for one that can.
        self._channels = frozenset(self._ports) | held_channels
        self._clock = clock
        self._pacer = Pacer(rate)
        self._batch = max(5, min(500, int(rate * BATCH_SECONDS)))
        self._lease = lease

    @property
    def window(self) -> int:
        """At most this many messages may repeat if the run is killed mid-send."""
        return 2 * self._batch

    async def run(self, quarter: str, progress: Progress | None = None) -> RunSummary:
        started = time.monotonic()
        summary = RunSummary(quarter)
        progress = progress or NoProgress()
        await self.ingest(quarter, summary, progress)
        await self.send(quarter, summary, progress)
        summary.seconds = time.monotonic() - started
        return summary

    async def ingest(self, quarter: str, summary: RunSummary, progress: Progress) -> None:
        nik_hash = self._keys.nik_hasher()
        async with self._database.transaction() as session:
            run = await NoticeRunRepository(session).lock(quarter, self._clock())
            cursor, done, summary.changes_read = run.cursor, run.ingested, run.changes_read
        progress.stage("ingest", None)

        def fetch(at: str | None) -> asyncio.Future[ChangesPage]:
            return asyncio.ensure_future(
                self._registry.quarter_changes(quarter, at, limit=PAGE_SIZE)
            )

        # The next page is read while the current one is written: the registry and the
        # database work at the same time.
        pending = None if done else fetch(cursor)
        try:
            while pending is not None:
                page = await pending
                pending = None if page.next_cursor is None else fetch(page.next_cursor)
                rows = [(nik_hash(c.nik), change_json(c)) for c in page.items]
                async with self._database.transaction() as session:
                    run = await NoticeRunRepository(session).lock(quarter, self._clock())
                    if run.cursor != cursor or run.ingested:  # another run got here first
                        if pending is not None:
                            pending.cancel()
                        cursor, done = run.cursor, run.ingested
                        pending = None if done else fetch(cursor)
                        continue
                    summary.matched += await NoticeRepository(session).ingest_page(quarter, rows)
                    run.cursor = page.next_cursor
                    run.ingested = page.next_cursor is None
                    run.changes_read += len(rows)
                    run.updated_at = self._clock()
                    cursor, summary.changes_read = run.cursor, run.changes_read
                progress.advance(len(rows))
        finally:
            if pending is not None:
                pending.cancel()

    async def send(self, quarter: str, summary: RunSummary, progress: Progress) -> None:
        await self._retire_unserved(quarter, summary, NoProgress())
        async with self._database.transaction() as session:
            pending = await NoticeRepository(session).pending_count(quarter, self._channels)
        progress.stage("send", pending)
        in_flight: set[asyncio.Task[None]] = set()
        while True:
            while len(in_flight) >= 2:
                _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            async with self._database.transaction() as session:
                notices = NoticeRepository(session)
                now = self._clock()
                due = await notices.claim_due(
                    quarter, self._channels, now, self._batch, self._lease
                )
                digests = (
                    []
                    if due
                    else await notices.claim_digests(
                        quarter, self._channels, now, self._batch, self._lease
                    )
                )
            if due:
                in_flight.add(
                    asyncio.create_task(self._send_batch(quarter, due, summary, progress))
                )
                continue
            if digests:
                in_flight.add(
                    asyncio.create_task(self._send_digests(quarter, digests, summary, progress))
                )
                continue
            if not in_flight:
                # A facilitator deactivated during the run: their notices are never claimed.
                await self._retire_unserved(quarter, summary, progress)
                if not await self._retries_waiting(quarter):
                    return
                await asyncio.sleep(0.2)
                continue
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            in_flight = {task for task in in_flight if not task.done()}

    async def _retries_waiting(self, quarter: str) -> bool:
        async with self._database.transaction() as session:
            return await NoticeRepository(session).pending_count(quarter, self._channels) > 0

    async def _send_batch(
        self, quarter: str, due: list[DueNotice], summary: RunSummary, progress: Progress
    ) -> None:
        results = await asyncio.gather(*(self._send_one(quarter, notice) for notice in due))
        now = self._clock()
        outcomes: list[tuple[int, str]] = []
        retry: list[tuple[int, float]] = []
        async with self._database.transaction() as session:
            notices = NoticeRepository(session)
            for notice, result in zip(due, results, strict=True):
                if result.outcome is Delivery.SENT:
                    outcomes.append((notice.id, SENT))
                elif result.outcome is Delivery.HELD:
                    self._hold(session, quarter, notice, notice.change, now)
                    outcomes.append((notice.id, HELD))
                elif result.outcome is Delivery.GONE:
                    await SubscriptionRepository(session).retire(notice.subscription_id, now)
                    outcomes.append((notice.id, GONE))
                elif notice.attempts >= MAX_ATTEMPTS:
                    outcomes.append((notice.id, FAILED))
                else:
                    retry.append((notice.id, result.retry_after or 2.0**notice.attempts))
            await notices.finish(outcomes, now)
            for notice_id, wait in retry:
                await notices.release(notice_id, now + timedelta(seconds=wait))
        self._count(outcomes, summary, progress)

    async def _send_one(self, quarter: str, notice: DueNotice) -> DeliveryResult:
        if notice.channel in self._held_channels:
            return DeliveryResult(Delivery.HELD)
        try:
            address = self._address(notice.channel, notice.address_hash, notice.sealed_address)
        except SealBroken:
            log.error("a subscription's address could not be read; retired")
            return DeliveryResult(Delivery.GONE)
        reply: Reply = render_quarter_notice(
            notice_from_json(quarter, notice.change), translator(notice.language)
        )
        return await self._deliver(notice.channel, address, reply)

    async def _deliver(self, channel: str, address: str, reply: Reply) -> DeliveryResult:
        """One message, in its turn at the run's pace."""
        await self._pacer.turn()
        try:
            result = await self._ports[channel].deliver(address, reply)
        except Exception:
            log.exception("sending a notice failed")
            return DeliveryResult(Delivery.RETRY)
        if result.outcome is Delivery.RETRY and result.retry_after:
            self._pacer.pause(result.retry_after)  # Telegram asked every sender to wait
        return result

    async def _send_digests(
        self, quarter: str, digests: list[DueDigest], summary: RunSummary, progress: Progress
    ) -> None:
        await asyncio.gather(
            *(self._send_digest(quarter, digest, summary, progress) for digest in digests)
        )

    async def _send_digest(
        self, quarter: str, digest: DueDigest, summary: RunSummary, progress: Progress
    ) -> None:
        """One facilitator chat's digest, part after part. Each part delivered is recorded
        at once; a blocked bot retires the chat's digest subscriptions; on a failure the
        households not yet told wait for another try (a new, smaller digest)."""
        if digest.channel in self._held_channels:  # no digests on a small screen
            async with self._database.transaction() as session:
                now = self._clock()
                for notice in digest.notices:
                    self._hold(session, quarter, digest, notice.change, now)
                outcomes = [(notice.id, HELD) for notice in digest.notices]
                await NoticeRepository(session).finish(outcomes, now)
            self._count(outcomes, summary, progress)
            return
        try:
            address = self._address(digest.channel, digest.address_hash, digest.sealed_address)
        except SealBroken:
            log.error("a facilitator chat's address could not be read; retired")
            gone = DeliveryResult(Delivery.GONE)
            await self._end_digest(digest, list(digest.notices), gone, summary, progress)
            return
        # In NIK order: a kecamatan's households together, as on the facilitator's list.
        by_nik = sorted(((self._nik(digest, n), n) for n in digest.notices), key=lambda p: p[0])
        notices = [notice for _, notice in by_nik]
        households = [
            DigestHousehold(mask_nik(nik), notice_from_json(quarter, notice.change))
            for nik, notice in by_nik
        ]
        told = 0
        for part in render_quarter_digest(quarter, households, translator(digest.language)):
            result = await self._deliver(digest.channel, address, part.reply)
            if result.outcome not in (Delivery.SENT, Delivery.HELD):
                await self._end_digest(digest, notices[told:], result, summary, progress)
                return
            state = SENT if result.outcome is Delivery.SENT else HELD
            outcomes = [(n.id, state) for n in notices[told : told + part.households]]
            told += part.households
            async with self._database.transaction() as session:
                await NoticeRepository(session).finish(outcomes, self._clock())
            summary.digests += 1
            self._count(outcomes, summary, progress)

    async def _end_digest(
        self,
        digest: DueDigest,
        untold: list[DigestNotice],
        result: DeliveryResult,
        summary: RunSummary,
        progress: Progress,
    ) -> None:
        """The households of a digest that did not reach the chat: retired with the chat's
        digest subscriptions if it is gone, otherwise tried again or given up."""
        now = self._clock()
        outcomes: list[tuple[int, str]] = []
        async with self._database.transaction() as session:
            notices = NoticeRepository(session)
            if result.outcome is Delivery.GONE:
                await SubscriptionRepository(session).retire_digests(
                    digest.channel, digest.address_hash, now
                )
                outcomes = [(notice.id, GONE) for notice in untold]
            else:
                for notice in untold:
                    if notice.attempts >= MAX_ATTEMPTS:
                        outcomes.append((notice.id, FAILED))
                    else:
                        wait = result.retry_after or 2.0**notice.attempts
                        await notices.release(notice.id, now + timedelta(seconds=wait))
            await notices.finish(outcomes, now)
        self._count(outcomes, summary, progress)

    async def _retire_unserved(self, quarter: str, summary: RunSummary, progress: Progress) -> None:
        """Notices and subscriptions of facilitators deactivated since they subscribed."""
        async with self._database.transaction() as session:
            now = self._clock()
            retired = await NoticeRepository(session).retire_unserved(quarter, self._channels, now)
            await SubscriptionRepository(session).retire_of_inactive_facilitators(now)
        if retired:
            log.info("notices: %d of deactivated facilitators retired", retired)
            observe_notices([GONE] * retired)
            summary.retired += retired
            progress.advance(retired)

    @staticmethod
    def _count(outcomes: list[tuple[int, str]], summary: RunSummary, progress: Progress) -> None:
        """Finished notices into the metrics, the summary and the progress bar."""
        observe_notices(state for _, state in outcomes)
        for _, state in outcomes:
            summary.sent += state == SENT
            summary.held += state == HELD
            summary.retired += state == GONE
            summary.failed += state == FAILED
        progress.advance(len(outcomes))

    def _address(self, channel: str, address_hash: str, sealed: bytes) -> str:
        return self._keys.unseal(
            sealed, context=subscription_seal_context(channel, address_hash)
        ).decode()

    def _nik(self, digest: DueDigest, notice: DigestNotice) -> str:
        try:
            return self._keys.unseal(
                notice.sealed_nik, context=nik_seal_context(digest.channel, digest.address_hash)
            ).decode()
        except SealBroken:
            log.error("a subscription's NIK could not be read; shown as unknown")
            return "?" * 16

    def _hold(
        self,
        session: AsyncSession,
        quarter: str,
        notice: DueNotice | DueDigest,
        change: str,
        now: datetime,
    ) -> None:
        """Keep the notice for the person's next session (a channel that cannot push)."""
        address = self._keys.unseal(
            notice.sealed_address,
            context=subscription_seal_context(notice.channel, notice.address_hash),
        )
        OutboundRepository(session).add(
            channel=notice.channel,
            address_hash=notice.address_hash,
            sealed_address=self._keys.seal(
                address, context=outbound_seal_context(notice.channel, notice.address_hash)
            ),
            language=notice.language,
            payload=notice_from_json(quarter, change).to_json(),
            now=now,
            state=MESSAGE_HELD,
        )
