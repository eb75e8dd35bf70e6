"""Facilitators, their areas, households and audit: queries over one session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.filings import TicketSummary
from bot.storage.filing_repository import filing_summary
from bot.storage.models import (
    FacilitatorAccount,
    FacilitatorArea,
    FacilitatorAuditEntry,
    FacilitatorHousehold,
    Filing,
)


def deactivated_before(cutoff: datetime) -> Select[str]:
    """Ids of facilitators deactivated before `cutoff`, as a subquery for the retention
    sweep. Deactivation is for good (there is no reactivation), so the set only grows."""
    return select(FacilitatorAccount.id).where(
        FacilitatorAccount.active.is_(False), FacilitatorAccount.deactivated_at < cutoff
    )


class FacilitatorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, account: FacilitatorAccount, areas: Sequence[str]) -> None:
        self._session.add(account)
        self._session.add_all(
            FacilitatorArea(facilitator_id=account.id, kecamatan=code) for code in areas
        )

    async def get(self, facilitator_id: str) -> FacilitatorAccount | None:
        return await self._session.get(FacilitatorAccount, facilitator_id)

    async def by_phone_hash(self, phone_hash: str) -> FacilitatorAccount | None:
        return await self._session.scalar(
            select(FacilitatorAccount).where(FacilitatorAccount.phone_hash == phone_hash)
        )

    async def by_code_hash(self, code_hash: str) -> FacilitatorAccount | None:
        return await self._session.scalar(
            select(FacilitatorAccount).where(FacilitatorAccount.code_hash == code_hash)
        )

    async def by_chat_hash(self, chat_hash: str) -> FacilitatorAccount | None:
        return await self._session.scalar(
            select(FacilitatorAccount).where(FacilitatorAccount.chat_hash == chat_hash)
        )

    async def all(self) -> list[FacilitatorAccount]:
        rows = await self._session.scalars(
            select(FacilitatorAccount).order_by(
                FacilitatorAccount.created_at, FacilitatorAccount.id
            )
        )
        return list(rows)

    async def claim_code(
        self, facilitator_id: str, code_hash: str, chat_hash: str, now: datetime
    ) -> bool:
        """Mark the code used and link the chat, if the code is still this facilitator's
        and unused: one guarded UPDATE, so of two concurrent uses exactly one wins."""
        statement = (
            update(FacilitatorAccount)
            .where(
                FacilitatorAccount.id == facilitator_id,
                FacilitatorAccount.code_hash == code_hash,
                FacilitatorAccount.code_used_at.is_(None),
                FacilitatorAccount.active.is_(True),
            )
            .values(code_used_at=now, chat_hash=chat_hash)
        )
        result = cast(CursorResult[Any], await self._session.execute(statement))
        return result.rowcount == 1

    async def areas_of(self, facilitator_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        rows = await self._session.execute(
            select(FacilitatorArea.facilitator_id, FacilitatorArea.kecamatan)
            .where(FacilitatorArea.facilitator_id.in_(facilitator_ids))
            .order_by(FacilitatorArea.facilitator_id, FacilitatorArea.kecamatan)
        )
        areas: dict[str, list[str]] = {facilitator_id: [] for facilitator_id in facilitator_ids}
        for facilitator_id, kecamatan in rows:
            areas[facilitator_id].append(kecamatan)
        return {facilitator_id: tuple(codes) for facilitator_id, codes in areas.items()}

    async def replace_areas(self, facilitator_id: str, areas: Sequence[str]) -> None:
        await self._session.execute(
            delete(FacilitatorArea).where(FacilitatorArea.facilitator_id == facilitator_id)
        )
        self._session.add_all(
            FacilitatorArea(facilitator_id=facilitator_id, kecamatan=code) for code in areas
        )
        await self._session.flush()

    async def household(self, facilitator_id: str, nik_hash: str) -> FacilitatorHousehold | None:
        return await self._session.get(FacilitatorHousehold, (facilitator_id, nik_hash))

    def add_household(self, household: FacilitatorHousehold) -> None:
        self._session.add(household)

    async def households(self, facilitator_id: str) -> list[FacilitatorHousehold]:
        rows = await self._session.scalars(
            select(FacilitatorHousehold)
            .where(FacilitatorHousehold.facilitator_id == facilitator_id)
            .order_by(FacilitatorHousehold.added_at, FacilitatorHousehold.nik_hash)
        )
        return list(rows)

    async def tickets_about(
        self,
        facilitator_id: str,
        filer_channel: str,
        chat_hash: str | None,
        nik_hashes: Sequence[str],
    ) -> dict[str, list[TicketSummary]]:
        """This facilitator's filings about these households, newest first, by NIK hash:
        filed under its id, or from its linked chat."""
        if not nik_hashes:
            return {}
        filer = Filing.facilitator_id == facilitator_id
        if chat_hash is not None:
            filer = or_(
                filer, (Filing.filer_channel == filer_channel) & (Filing.filer_hash == chat_hash)
            )
        rows = await self._session.scalars(
            select(Filing)
            .where(Filing.subject_hash.in_(nik_hashes), filer)
            .order_by(Filing.created_at.desc(), Filing.ticket)
        )
        tickets: dict[str, list[TicketSummary]] = {}
        for row in rows:
            assert row.subject_hash is not None
            tickets.setdefault(row.subject_hash, []).append(filing_summary(row))
        return tickets

    async def forget_households_deactivated_before(self, cutoff: datetime) -> int:
        """Delete the household lists of facilitators deactivated before `cutoff` (the
        hand-over is over); their account, areas and audit stay. Rows deleted."""
        statement = (
            delete(FacilitatorHousehold)
            .where(FacilitatorHousehold.facilitator_id.in_(deactivated_before(cutoff)))
            .execution_options(synchronize_session=False)  # a sweep has nothing loaded
        )
        result = cast(CursorResult[Any], await self._session.execute(statement))
        return result.rowcount or 0

    def record(self, entry: FacilitatorAuditEntry) -> None:
        self._session.add(entry)

    async def audit(self, facilitator_id: str) -> list[FacilitatorAuditEntry]:
        rows = await self._session.scalars(
            select(FacilitatorAuditEntry)
            .where(FacilitatorAuditEntry.facilitator_id == facilitator_id)
            .order_by(FacilitatorAuditEntry.at, FacilitatorAuditEntry.id)
        )
        return list(rows)
