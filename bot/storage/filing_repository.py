"""Filings, their photos and their history: intention-revealing queries over one session."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.filings import OPEN_STAGES, TicketEvent, TicketHistory, TicketSummary
from bot.storage.models import Filing, FilingEvent, FilingPhotoRef, OutboxEntry
from bot.storage.outbox_repository import DELIVERED


class FilingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, filing: Filing, photos: Sequence[FilingPhotoRef], now: datetime) -> None:
        """A new filing with its photos, its first history line and its outbox row."""
        self._session.add(filing)
        self._session.add_all(photos)
        self._session.add(
            FilingEvent(filing_id=filing.id, stage=filing.stage, reason_code=None, at=now)
        )
        self._session.add(
            OutboxEntry(
                filing_id=filing.id,
                state="pending",
                attempts=0,
                next_attempt_at=now,
                lease_until=None,
                last_error=None,
                created_at=now,
                delivered_at=None,
            )
        )

    async def count_by_filer_since(self, channel: str, filer_hash: str, since: datetime) -> int:
        statement = select(func.count()).where(
            Filing.filer_channel == channel,
            Filing.filer_hash == filer_hash,
            Filing.created_at >= since,
        )
        return (await self._session.execute(statement)).scalar_one()

    async def open_ticket(
        self, channel: str, filer_hash: str, kind: str, subject_hash: str
    ) -> str | None:
        """The filer's open ticket of this kind about this subject, if there is one."""
        statement = (
            select(Filing.ticket)
            .where(
                Filing.kind == kind,
                Filing.subject_hash == subject_hash,
                Filing.stage.in_(OPEN_STAGES),
                Filing.filer_channel == channel,
                Filing.filer_hash == filer_hash,
            )
            .limit(1)
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def tickets_of(self, channel: str, filer_hash: str, limit: int) -> list[TicketSummary]:
        statement = (
            select(Filing)
            .where(Filing.filer_channel == channel, Filing.filer_hash == filer_hash)
            .order_by(Filing.created_at.desc())
            .limit(limit)
        )
        rows = (await self._session.execute(statement)).scalars()
        return [filing_summary(row) for row in rows]

    async def history(self, channel: str, filer_hash: str, ticket: str) -> TicketHistory | None:
        statement = select(Filing).where(
            Filing.ticket == ticket,
            Filing.filer_channel == channel,
            Filing.filer_hash == filer_hash,
        )
        row = (await self._session.execute(statement)).scalar_one_or_none()
        if row is None:
            return None
        events = (
            await self._session.execute(
                select(FilingEvent)
                .where(FilingEvent.filing_id == row.id)
                .order_by(FilingEvent.at, FilingEvent.id)
            )
        ).scalars()
        return TicketHistory(
            summary=filing_summary(row),
            events=tuple(TicketEvent(e.stage, e.reason_code, e.at) for e in events),
        )

    async def get(self, filing_id: str) -> Filing | None:
        return await self._session.get(Filing, filing_id)

    async def get_many(self, filing_ids: Sequence[str]) -> dict[str, Filing]:
        rows = await self._session.execute(select(Filing).where(Filing.id.in_(filing_ids)))
        return {row.id: row for row in rows.scalars()}

    async def load_for_sending(
        self, filing_ids: Sequence[str]
    ) -> dict[str, tuple[bytes, tuple[tuple[str, str], ...]]]:
        """Per filing: its sealed document and its photos (SHA-256, role) in order."""
        documents = await self._session.execute(
            select(Filing.id, Filing.sealed_document).where(Filing.id.in_(filing_ids))
        )
        photos: dict[str, list[tuple[str, str]]] = {}
        rows = await self._session.execute(
            select(FilingPhotoRef.filing_id, FilingPhotoRef.sha256, FilingPhotoRef.role)
            .where(FilingPhotoRef.filing_id.in_(filing_ids))
            .order_by(FilingPhotoRef.filing_id, FilingPhotoRef.position)
        )
        for filing_id, sha256, role in rows:
            photos.setdefault(filing_id, []).append((sha256, role))
        return {
            filing_id: (sealed, tuple(photos.get(filing_id, ()))) for filing_id, sealed in documents
        }

    async def photos_of(self, filing_id: str) -> list[FilingPhotoRef]:
        statement = (
            select(FilingPhotoRef)
            .where(FilingPhotoRef.filing_id == filing_id)
            .order_by(FilingPhotoRef.position)
        )
        return list((await self._session.execute(statement)).scalars())

    async def forget_photos_delivered_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Remove the photo rows of up to `limit` filings the registry received before
        `cutoff`; return the digests those rows named (a digest once per row removed).

        Only a delivered outbox row counts: a filing still pending, refused or dead keeps
        its photos, since it may yet be sent (again)."""
        delivered_ids = (
            select(FilingPhotoRef.filing_id)
            .join(OutboxEntry, OutboxEntry.filing_id == FilingPhotoRef.filing_id)
            .where(OutboxEntry.state == DELIVERED, OutboxEntry.delivered_at < cutoff)
            .distinct()
            .order_by(FilingPhotoRef.filing_id)
            .limit(limit)
        )
        filing_ids = list((await self._session.execute(delivered_ids)).scalars())
        if not filing_ids:
            return []
        digests = await self._session.execute(
            select(FilingPhotoRef.sha256).where(FilingPhotoRef.filing_id.in_(filing_ids))
        )
        released = list(digests.scalars())
        await self._session.execute(
            delete(FilingPhotoRef).where(FilingPhotoRef.filing_id.in_(filing_ids))
        )
        return released

    async def referenced_photos(self, digests: Collection[str]) -> set[str]:
        """Those of `digests` that some filing's photo row still names."""
        if not digests:
            return set()
        statement = (
            select(FilingPhotoRef.sha256).where(FilingPhotoRef.sha256.in_(digests)).distinct()
        )
        return set((await self._session.execute(statement)).scalars())

    def move(
        self,
        filing: Filing,
        stage: str,
        reason_code: str | None,
        at: datetime,
        *,
        registry_ticket: str | None = None,
    ) -> bool:
        """Record a new stage; False (and nothing written) when it is the stage already."""
        if registry_ticket is not None:
            filing.registry_ticket = registry_ticket
        if filing.stage == stage and filing.stage_reason == reason_code:
            return False
        filing.stage = stage
        filing.stage_reason = reason_code
        filing.updated_at = at
        self._session.add(
            FilingEvent(filing_id=filing.id, stage=stage, reason_code=reason_code, at=at)
        )
        return True


def filing_summary(row: Filing) -> TicketSummary:
    return TicketSummary(
        ticket=row.ticket,
        kind=row.kind,  # type: ignore[arg-type]
        stage=row.stage,
        reason_code=row.stage_reason,
        registry_ticket=row.registry_ticket,
        filed_at=row.created_at,
    )
