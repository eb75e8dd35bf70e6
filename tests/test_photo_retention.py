"""Photo retention on SQLite and PostgreSQL: a filing's photos go once the registry has had
it for the retention period, never before, and a blob shared with a filing that still
needs it stays."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import select

from bot.app import Services, utc_now
from bot.filings import FilingAccepted, FilingPhoto
from bot.housekeeping import PhotoRetention, sweep
from bot.storage.filing_repository import FilingRepository
from bot.storage.models import Filing, OutboxEntry
from bot.storage.outbox_repository import DELIVERED, OutboxRepository
from registry_client.sandbox import RunningSandbox
from tests.filing_factory import file, filer, proposal, stored_photos

KEEP = timedelta(days=30)


async def file_proposal(
    services: Services, number: int, nik: str, photos: tuple[FilingPhoto, ...]
) -> str:
    """File a proposal; its filing id."""
    outcome = await file(services, filer(number)[0], proposal(nik, photos))
    assert isinstance(outcome, FilingAccepted)
    async with services.database.transaction() as session:
        found = await session.execute(select(Filing.id).where(Filing.ticket == outcome.ticket))
        return found.scalar_one()


async def photo_digests(services: Services, filing_id: str) -> list[str]:
    async with services.database.transaction() as session:
        return [row.sha256 for row in await FilingRepository(session).photos_of(filing_id)]


async def outbox_state(services: Services, filing_id: str) -> str:
    async with services.database.transaction() as session:
        entry = await session.get(OutboxEntry, filing_id)
        assert entry is not None
        return entry.state


def stored(services: Services, photos: tuple[FilingPhoto, ...]) -> list[bool]:
    return [services.blobs.exists(photo.sha256) for photo in photos]


async def test_photos_go_after_retention_once_delivered_and_shared_blobs_stay_while_needed(
    services: Services, sandbox: RunningSandbox
) -> None:
    retention = PhotoRetention(services.blobs, KEEP)
    first, second, third, fourth = sandbox.population.sample(4)
    own_photos, shared_photos = stored_photos(services, 2, seed=1), stored_photos(services, 2, 2)
    alone = await file_proposal(services, 1, first.nik, own_photos)
    sharing = await file_proposal(services, 2, second.nik, shared_photos)
    assert await services.outbox.deliver_due() == 2
    assert {await outbox_state(services, alone), await outbox_state(services, sharing)} == {
        DELIVERED
    }
    # Filed after that delivery: one still queued (with the same photos), one dead letter.
    pending = await file_proposal(services, 3, third.nik, shared_photos)
    dead_photos = stored_photos(services, 2, seed=3)
    dead = await file_proposal(services, 4, fourth.nik, dead_photos)
    async with services.database.transaction() as session:
        entry = await OutboxRepository(session).entry(dead)
        assert entry is not None
        OutboxRepository.dead(entry, "photo BlobCorrupt")
    delivered_at = utc_now()

    recently = await sweep(
        services.database, delivered_at + KEEP - timedelta(days=1), photos=retention
    )
    assert (recently.photos, recently.blobs) == (0, 0)
    assert stored(services, own_photos + shared_photos + dead_photos) == [True] * 6
    assert len(await photo_digests(services, alone)) == 2

    later = delivered_at + KEEP + timedelta(days=1)
    swept = await sweep(services.database, later, photos=retention)
    assert (swept.photos, swept.blobs) == (4, 2)  # the shared blobs are still named
    assert await photo_digests(services, alone) == []
    assert await photo_digests(services, sharing) == []
    assert stored(services, own_photos) == [False, False]
    assert stored(services, shared_photos) == [True, True]
    assert await photo_digests(services, pending) == [p.sha256 for p in shared_photos]
    assert await photo_digests(services, dead) == [p.sha256 for p in dead_photos]
    assert stored(services, dead_photos) == [True, True]

    # Once the filing still holding the shared blobs is delivered and ages out, they go.
    assert await services.outbox.deliver_due() == 1
    delivered_at = utc_now()
    again = await sweep(
        services.database, delivered_at + KEEP - timedelta(days=1), photos=retention
    )
    assert (again.photos, again.blobs) == (0, 0)
    swept = await sweep(
        services.database, delivered_at + KEEP + timedelta(days=1), photos=retention
    )
    assert (swept.photos, swept.blobs) == (2, 2)
    assert await photo_digests(services, pending) == []
    assert stored(services, shared_photos) == [False, False]
    assert await photo_digests(services, dead) == [p.sha256 for p in dead_photos]


async def test_photos_of_drafts_never_sent_go_after_the_grace_but_not_while_in_use(
    services: Services, sandbox: RunningSandbox
) -> None:
    retention = PhotoRetention(services.blobs, KEEP)
    abandoned, sent_again, filed = (stored_photos(services, 1, seed=s)[0] for s in (7, 8, 9))
    await file_proposal(services, 1, sandbox.population.sample(1)[0].nik, (filed,))
    now = utc_now()
    # Within the grace a draft may still hold them: nothing goes.
    await sweep(services.database, now + timedelta(days=1), photos=retention)
    assert stored(services, (abandoned, sent_again, filed)) == [True, True, True]
    later = now + timedelta(days=3)
    # Stored again "just now" (a draft took the same photo): it stays a while longer.
    path = services.blobs.path_for(sent_again.sha256)
    os.utime(path, (later.timestamp(), later.timestamp()))
    swept = await sweep(services.database, later, photos=retention)
    assert swept.blobs == 1
    assert stored(services, (abandoned, sent_again, filed)) == [False, True, True]
