"""Messages the service sends on its own: queued, claimed with a lease, delivered or held."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import OutboundMessage, RegistryCursor
from bot.storage.singleton_rows import lock_or_create

PENDING, HELD, SENT, GONE, FAILED = "pending", "held", "sent", "gone", "failed"


class OutboundRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(
        self,
        *,
        channel: str,
        address_hash: str,
        sealed_address: bytes,
        language: str,
        payload: str,
        now: datetime,
        state: str = PENDING,
    ) -> None:
        self._session.add(
            OutboundMessage(
                channel=channel,
                address_hash=address_hash,
                sealed_address=sealed_address,
                language=language,
                payload=payload,
                state=state,
                attempts=0,
                next_attempt_at=now,
                lease_until=None,
                created_at=now,
                sent_at=None,
            )
        )

    async def claim_due(
        self, channels: Collection[str], now: datetime, limit: int, lease: timedelta
    ) -> list[OutboundMessage]:
        statement = (
            select(OutboundMessage)
            .where(
                OutboundMessage.state == PENDING,
                OutboundMessage.channel.in_(channels),
                OutboundMessage.next_attempt_at <= now,
                or_(OutboundMessage.lease_until.is_(None), OutboundMessage.lease_until <= now),
            )
            .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list((await self._session.execute(statement)).scalars())
        for row in rows:
            row.lease_until = now + lease
            row.attempts += 1
        return rows

    async def get(self, message_id: int) -> OutboundMessage | None:
        return await self._session.get(OutboundMessage, message_id, with_for_update=True)

    async def take_held(
        self, channel: str, address_hash: str, now: datetime, limit: int
    ) -> list[OutboundMessage]:
        """Messages kept for this address (oldest first), marked as shown."""
        statement = (
            select(OutboundMessage)
            .where(
                OutboundMessage.channel == channel,
                OutboundMessage.address_hash == address_hash,
                OutboundMessage.state == HELD,
            )
            .order_by(OutboundMessage.id)
            .limit(limit)
        )
        rows = list((await self._session.execute(statement)).scalars())
        if rows:
            await self._session.execute(
                update(OutboundMessage)
                .where(OutboundMessage.id.in_([row.id for row in rows]))
                .values(state=SENT, sent_at=now)
            )
        return rows


class CursorRepository:
    """Stored positions in the registry's feeds."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def read(self, name: str) -> str | None:
        row = await self._session.get(RegistryCursor, name)
        return None if row is None else row.cursor

    async def lock(self, name: str, now: datetime) -> RegistryCursor:
        """The feed's position, locked, made on first use (two instances may start at once)."""
        return await lock_or_create(
            self._session, RegistryCursor, name, name=name, cursor=None, updated_at=now
        )
