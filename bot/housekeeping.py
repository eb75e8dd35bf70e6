"""Periodic deletion of what is no longer needed: admission counters of ended windows,
owners' matches past their memory, conversations of people who never gave consent, stopped
subscriptions a quarter on, photos of filings the registry has had for longer than the
retention period, and the household lists and subscriptions of facilitators deactivated
for longer than theirs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.admission import DAY
from bot.blob_store import BlobStore
from bot.status_service import MATCH_MEMORY
from bot.storage.admission_repository import AdmissionRepository
from bot.storage.database import Database
from bot.storage.facilitator_repository import FacilitatorRepository
from bot.storage.filing_repository import FilingRepository
from bot.storage.notice_repository import SubscriptionRepository
from bot.storage.repositories import ConversationRepository

log = logging.getLogger(__name__)

UNCONSENTED_RETENTION = timedelta(days=1)
# A stopped subscription is kept a quarter and a margin: subscribing again meanwhile takes
# up the same row, so that quarter's notice, already sent, is not sent a second time.
STOPPED_SUBSCRIPTION_MEMORY = timedelta(days=100)
# Longer than a draft can live (the idle timeout is at most a day): a photo older than
# this that no filing names belongs to no one.
DRAFT_GRACE = timedelta(days=2)
INTERVAL_S = 600.0
# Filings whose photos one transaction forgets: a backlog (the first sweep after the
# retention is turned on) goes in bounded steps instead of one long lock.
PHOTO_BATCH = 200


@dataclass(frozen=True, slots=True)
class PhotoRetention:
    """Photos of a delivered filing are kept `keep` after delivery, then deleted."""

    blobs: BlobStore
    keep: timedelta


@dataclass(frozen=True, slots=True)
class FacilitatorRetention:
    """A deactivated facilitator's household list and the subscriptions they held are
    kept `keep` after the deactivation (the hand-over to the next one), then deleted.
    Their account, areas and audit stay: the audit must name who acted."""

    keep: timedelta


@dataclass(frozen=True, slots=True)
class Swept:
    admission_counters: int
    nik_matches: int
    conversations: int
    photos: int = 0  # photo rows of delivered filings
    blobs: int = 0  # files no remaining row named
    facilitator_households: int = 0  # rows of deactivated facilitators' lists
    facilitator_subscriptions: int = 0  # subscriptions they held (notices went along)
    stopped_subscriptions: int = 0  # stopped or retired long enough ago (notices too)


async def sweep(
    database: Database,
    now: datetime,
    *,
    photos: PhotoRetention | None = None,
    facilitators: FacilitatorRetention | None = None,
) -> Swept:
    async with database.transaction() as session:
        admission = AdmissionRepository(session)
        # Every window is at most a day long: one that started two days ago has ended.
        counters = await admission.forget_windows_before(now - 2 * DAY)
        matches = await admission.forget_matches_before(now - MATCH_MEMORY)
        conversations = await ConversationRepository(session).forget_unconsented_idle_since(
            now - UNCONSENTED_RETENTION
        )
        stopped = await SubscriptionRepository(session).forget_stopped_before(
            now - STOPPED_SUBSCRIPTION_MEMORY
        )
    households = subscriptions = 0
    if facilitators is not None:
        households, subscriptions = await forget_deactivated_facilitators(
            database, now - facilitators.keep
        )
    rows = blobs = 0
    if photos is not None:
        rows, blobs = await forget_delivered_photos(database, photos, now - photos.keep, now)
        blobs += await forget_orphan_blobs(database, photos.blobs, now - DRAFT_GRACE)
    return Swept(
        counters, matches, conversations, rows, blobs, households, subscriptions, stopped
    )


async def forget_deactivated_facilitators(database: Database, cutoff: datetime) -> tuple[int, int]:
    """Delete the household lists and held subscriptions of facilitators deactivated
    before `cutoff`, in one transaction. Returns (household rows, subscriptions) deleted."""
    async with database.transaction() as session:
        households = await FacilitatorRepository(session).forget_households_deactivated_before(
            cutoff
        )
        subscriptions = await SubscriptionRepository(session).forget_held_by_deactivated_before(
            cutoff
        )
    return households, subscriptions


async def forget_delivered_photos(
    database: Database, retention: PhotoRetention, cutoff: datetime, now: datetime
) -> tuple[int, int]:
    """Delete the photos of filings delivered before `cutoff`: their rows, and each blob
    no other filing still names (a blob is shared by every filing with the same bytes).
    Returns (rows, blobs) deleted."""
    rows = blobs = 0
    while True:
        async with database.transaction() as session:
            filings = FilingRepository(session)
            released = await filings.forget_photos_delivered_before(cutoff, PHOTO_BATCH)
            orphans = set(released) - await filings.referenced_photos(set(released))
            # A photo sent again lately may sit in a draft no row knows of: the orphan
            # sweep takes it once it is old enough.
            recent = (now - DRAFT_GRACE).timestamp()
            orphans = {sha for sha in orphans if not retention.blobs.used_since(sha, recent)}
            # Before the commit: should it fail, the rows stay and the next sweep retries;
            # after it, a crash would leave files that no row names, kept for ever.
            for sha256 in sorted(orphans):
                blobs += await asyncio.to_thread(retention.blobs.delete, sha256)
        rows += len(released)
        if not released:
            return rows, blobs


async def forget_orphan_blobs(database: Database, blobs: BlobStore, before: datetime) -> int:
    """Delete files no filing names that were last stored before `before`: photos of
    filings begun and never sent (their drafts are long gone), and any left behind."""
    candidates = await asyncio.to_thread(lambda: list(blobs.older_than(before.timestamp())))
    deleted = 0
    for start in range(0, len(candidates), PHOTO_BATCH):
        batch = set(candidates[start : start + PHOTO_BATCH])
        async with database.transaction() as session:
            named = await FilingRepository(session).referenced_photos(batch)
        for sha256 in sorted(batch - named):
            # Checked again: the same photo may have been sent again since the walk.
            if not blobs.used_since(sha256, before.timestamp()):
                deleted += await asyncio.to_thread(blobs.delete, sha256)
    return deleted


async def sweep_forever(
    database: Database,
    clock: Callable[[], datetime],
    *,
    photos: PhotoRetention,
    facilitators: FacilitatorRetention,
    interval_s: float = INTERVAL_S,
) -> None:
    """Sweep now and then every `interval_s`; safe to run in several instances at once."""
    while True:
        try:
            swept = await sweep(database, clock(), photos=photos, facilitators=facilitators)
            log.info("housekeeping removed %s", swept)
        except Exception:
            log.exception("housekeeping failed; trying again later")
        await asyncio.sleep(interval_s)
