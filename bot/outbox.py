"""Delivers filings from the outbox to the registry's participation queue, exactly once.

Each filing is sent with its UUID as Idempotency-Key, so a re-send after a timeout or a
killed worker gets the same ticket back instead of a second one. Failures that may pass
(network, timeouts, 429, 5xx, a broken answer) are retried with exponential back-off and
jitter, honouring Retry-After; after too many attempts or too long, the filing becomes a
dead letter (`bansos-bot outbox --retry-dead` sends those again). A 422 is final: the
filer is told what was wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.blob_store import BlobCorrupt, BlobMissing, BlobStore
from bot.crypto import KeyRing
from bot.filer_messages import tell_filer
from bot.filing_service import filing_seal_context
from bot.filings import QUEUED, REFUSED
from bot.storage.database import Database
from bot.storage.filing_repository import FilingRepository
from bot.storage.outbox_repository import OutboxRepository
from registry_client import RegistryClient, RegistryError, RegistryRejected, RegistryUnavailable
from registry_client.models import PhotoPart

log = logging.getLogger(__name__)

# The only answer that says "never": anything else may pass and is tried again.
PERMANENT_STATUS = 422


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 2.0
    cap_s: float = 900.0
    max_attempts: int = 12
    max_age: timedelta = timedelta(hours=72)

    def delay_s(self, attempts: int, retry_after: float | None) -> float:
        """Exponential back-off with jitter, never sooner than the registry asked."""
        exponential = min(self.cap_s, self.base_s * 2.0 ** max(attempts - 1, 0))
        delay = exponential * random.uniform(0.5, 1.0)  # noqa: S311 - spreading, not secrecy
        return float(max(delay, retry_after or 0.0))


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A claimed filing as read in the claiming transaction: sealed document, photos."""

    filing_id: str
    sealed_document: bytes
    photos: tuple[tuple[str, str], ...]  # (sha256, role), in order


class _Unsendable(Exception):
    """A filing that can never be sent as stored (a photo lost from the blob store)."""


class OutboxWorker:
    def __init__(
        self,
        database: Database,
        keys: KeyRing,
        registry: RegistryClient,
        blobs: BlobStore,
        *,
        clock: Callable[[], datetime],
        policy: RetryPolicy | None = None,
        batch: int = 32,
        concurrency: int = 8,
        lease: timedelta = timedelta(seconds=60),
        send_timeout_s: float = 10.0,
        batches_in_flight: int = 2,
    ) -> None:
        self._database = database
        self._keys = keys
        self._registry = registry
        self._blobs = blobs
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self._lease = lease
        self._send_timeout_s = send_timeout_s
        self._batches_in_flight = batches_in_flight

    async def deliver_due(self) -> int:
        """Claim the filings due now and try each once; return how many were tried."""
        claimed = await self._claim()
        await self._deliver_batch(claimed)
        return len(claimed)

    async def run(self, stop: asyncio.Event, *, idle_s: float = 0.25) -> None:
        """Deliver until `stop` is set, claiming the next batch while one is being sent;
        sleep `idle_s` when nothing is due. Batches in hand are finished before returning."""
        in_flight: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            while len(in_flight) >= self._batches_in_flight:
                _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            try:
                claimed = await self._claim()
            except Exception:
                log.exception("outbox round failed; trying again shortly")
                claimed = []
            if claimed:
                in_flight.add(asyncio.create_task(self._deliver_batch(claimed)))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle_s)
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _claim(self) -> list[_Claimed]:
        """One transaction: lease a batch and read what sending it needs."""
        async with self._database.transaction() as session:
            ids = await OutboxRepository(session).claim_due(self._clock(), self._batch, self._lease)
            if not ids:
                return []
            loaded = await FilingRepository(session).load_for_sending(ids)
        return [_Claimed(filing_id, *loaded[filing_id]) for filing_id in ids if filing_id in loaded]

    async def _deliver_batch(self, claimed: list[_Claimed]) -> None:
        try:
            results = await asyncio.gather(*(self._send(item) for item in claimed))
            delivered = [(item.filing_id, t) for item, t in zip(claimed, results, strict=True) if t]
            if delivered:
                await self._record_delivered(delivered)
        except Exception:
            # The leases expire and the filings are sent again under the same keys.
            log.exception("recording an outbox batch failed; it will be retried")

    async def _send(self, item: _Claimed) -> str | None:
        """Send one filing: the registry's ticket once delivered, else None (a refusal,
        a retry or a dead letter is recorded here)."""
        async with self._slots:
            filing_id = item.filing_id
            try:
                document, photos = await self._open(item)
            except _Unsendable as problem:
                await self._record_dead(filing_id, str(problem))
                return None
            try:
                receipt = await self._registry.submit(
                    filing_id, document, photos, timeout=self._send_timeout_s
                )
            except RegistryRejected as refusal:
                if refusal.http_status == PERMANENT_STATUS:
                    await self._record_refused(filing_id, refusal.code)
                else:
                    await self._record_retry(filing_id, f"HTTP {refusal.http_status}", None)
                return None
            except RegistryUnavailable as problem:
                await self._record_retry(filing_id, "unavailable", problem.retry_after)
                return None
            except RegistryError as problem:
                await self._record_retry(filing_id, type(problem).__name__, None)
                return None
            return receipt.ticket

    async def _open(self, item: _Claimed) -> tuple[dict[str, object], tuple[PhotoPart, ...]]:
        context = filing_seal_context(item.filing_id)
        document = json.loads(self._keys.unseal(item.sealed_document, context=context))
        photos = []
        for sha256, role in item.photos:
            try:
                content = await asyncio.to_thread(self._blobs.get, sha256)
            except (BlobMissing, BlobCorrupt) as problem:
                raise _Unsendable(f"photo {type(problem).__name__}") from None
            photos.append(PhotoPart(sha256=sha256, role=role, content=content))
        return document, tuple(photos)

    async def _record_delivered(self, delivered: list[tuple[str, str]]) -> None:
        """One transaction for a batch's deliveries: outbox rows, stages, messages."""
        now = self._clock()
        tickets = dict(delivered)
        async with self._database.transaction() as session:
            entries = await OutboxRepository(session).entries(sorted(tickets))
            filings = FilingRepository(session)
            by_id = await filings.get_many(sorted(tickets))
            for filing_id, entry in entries.items():
                filing = by_id.get(filing_id)
                if filing is None:
                    continue
                OutboxRepository.delivered(entry, now)
                registry_ticket = tickets[filing_id]
                if filing.stage != QUEUED:  # the ticket's updates got here first: keep them
                    filing.registry_ticket = registry_ticket
                elif filings.move(filing, "received", None, now, registry_ticket=registry_ticket):
                    tell_filer(self._keys, session, filing, now)
        log.info("%d filing(s) delivered", len(delivered))

    async def _record_refused(self, filing_id: str, code: str) -> None:
        now = self._clock()
        async with self._database.transaction() as session:
            entry = await OutboxRepository(session).entry(filing_id)
            filing = await FilingRepository(session).get(filing_id)
            if entry is None or filing is None:
                return
            OutboxRepository.refused(entry, code)
            if FilingRepository(session).move(filing, REFUSED, code, now):
                tell_filer(self._keys, session, filing, now)
        log.warning("filing refused by the registry: %s", code)

    async def _record_retry(self, filing_id: str, error: str, retry_after: float | None) -> None:
        now = self._clock()
        async with self._database.transaction() as session:
            entry = await OutboxRepository(session).entry(filing_id)
            if entry is None:
                return
            too_old = now - entry.created_at >= self._policy.max_age
            if entry.attempts >= self._policy.max_attempts or too_old:
                OutboxRepository.dead(entry, error)
                log.error("filing moved to dead letters after %d attempts", entry.attempts)
                return
            delay = self._policy.delay_s(entry.attempts, retry_after)
            OutboxRepository.retry_at(entry, now + timedelta(seconds=delay), error)
        log.info("filing delivery failed (%s); next try in %.1f s", error, delay)

    async def _record_dead(self, filing_id: str, error: str) -> None:
        async with self._database.transaction() as session:
            entry = await OutboxRepository(session).entry(filing_id)
            if entry is not None:
                OutboxRepository.dead(entry, error)
        log.error("filing cannot be sent as stored: %s", error)
