"""Everything stored under one person's address, read or erased in one transaction.

Tables keyed by the address hash (conversations, subscriptions and their notices, outbound
messages, owners' matches) and filings by filer. Admission counters are not erased: they
hold a count only, end within two days, and erasing them would reset the limits that
stop enumeration (a security interest the law allows to outweigh erasure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import delete, func, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import (
    Filing,
    FilingEvent,
    FilingPhotoRef,
    NikMatch,
    Notice,
    OutboundMessage,
    OutboxEntry,
    Subscription,
)
from bot.storage.notice_repository import ACTIVE

_WAITING = ("pending", "held")


class PersonalDataRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def filings_of(self, channel: str, address_hash: str) -> list[Filing]:
        statement = (
            select(Filing)
            .where(Filing.filer_channel == channel, Filing.filer_hash == address_hash)
            .order_by(Filing.created_at.desc())
        )
        return list((await self._session.execute(statement)).scalars())

    async def photo_digests(self, filing_ids: Sequence[str]) -> list[str]:
        if not filing_ids:
            return []
        statement = select(FilingPhotoRef.sha256).where(FilingPhotoRef.filing_id.in_(filing_ids))
        return list((await self._session.execute(statement)).scalars())

    async def active_subscriptions(self, channel: str, address_hash: str) -> list[Subscription]:
        statement = select(Subscription).where(
            Subscription.channel == channel,
            Subscription.address_hash == address_hash,
            Subscription.state == ACTIVE,
        )
        return list((await self._session.execute(statement)).scalars())

    async def messages_waiting(self, channel: str, address_hash: str) -> int:
        statement = select(func.count()).where(
            OutboundMessage.channel == channel,
            OutboundMessage.address_hash == address_hash,
            OutboundMessage.state.in_(_WAITING),
        )
        return int((await self._session.execute(statement)).scalar_one())

    async def matches_of(self, address_hash: str) -> int:
        statement = select(func.count()).where(NikMatch.address_hash == address_hash)
        return int((await self._session.execute(statement)).scalar_one())

    async def erase_filings(self, filing_ids: Sequence[str]) -> None:
        """Filings and what hangs off them; foreign keys are not trusted to cascade
        (SQLite enforces them only when asked)."""
        if not filing_ids:
            return
        for table in (FilingPhotoRef, FilingEvent, OutboxEntry):
            await self._session.execute(delete(table).where(table.filing_id.in_(filing_ids)))
        await self._session.execute(delete(Filing).where(Filing.id.in_(filing_ids)))

    async def erase_subscriptions(self, channel: str, address_hash: str) -> int:
        mine = select(Subscription.id).where(
            Subscription.channel == channel, Subscription.address_hash == address_hash
        )
        await self._session.execute(delete(Notice).where(Notice.subscription_id.in_(mine)))
        result = await self._session.execute(
            delete(Subscription).where(
                Subscription.channel == channel, Subscription.address_hash == address_hash
            )
        )
        return _count(result)

    async def erase_messages(self, channel: str, address_hash: str) -> int:
        result = await self._session.execute(
            delete(OutboundMessage).where(
                OutboundMessage.channel == channel, OutboundMessage.address_hash == address_hash
            )
        )
        return _count(result)

    async def erase_matches(self, address_hash: str) -> None:
        await self._session.execute(delete(NikMatch).where(NikMatch.address_hash == address_hash))


def _count(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount or 0
