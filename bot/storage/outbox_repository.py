"""The outbox of filings to the registry: claim with a lease, then record the outcome.

Claims use FOR UPDATE SKIP LOCKED on PostgreSQL, so several workers share the work and
never hold the same row; SQLite's transactions are exclusive already. A lease, not an
open transaction, covers the HTTP call: a worker killed mid-send leaves a lease that
expires, and the row is sent again with the same Idempotency-Key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Filing, OutboxEntry

PENDING, DELIVERED, REFUSED, DEAD = "pending", "delivered", "refused", "dead"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    ticket: str
    created_at: datetime
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    depth: int  # filings not yet delivered (dead letters excluded)
    oldest_undelivered: datetime | None
    dead: tuple[DeadLetter, ...]


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[str]:
        """Up to `limit` due filing ids, leased to the caller until now + lease."""
        statement = (
            select(OutboxEntry.filing_id)
            .where(
                OutboxEntry.state == PENDING,
                OutboxEntry.next_attempt_at <= now,
                or_(OutboxEntry.lease_until.is_(None), OutboxEntry.lease_until <= now),
            )
            .order_by(OutboxEntry.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await self._session.execute(statement)).scalars())
        if ids:
            await self._session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.filing_id.in_(ids))
                .values(lease_until=now + lease, attempts=OutboxEntry.attempts + 1)
            )
        return ids

    async def entry(self, filing_id: str) -> OutboxEntry | None:
        return await self._session.get(OutboxEntry, filing_id, with_for_update=True)

    async def entries(self, filing_ids: list[str]) -> dict[str, OutboxEntry]:
        """Several rows, locked in id order (the same order everywhere: no deadlock)."""
        statement = (
            select(OutboxEntry)
            .where(OutboxEntry.filing_id.in_(filing_ids))
            .order_by(OutboxEntry.filing_id)
            .with_for_update()
        )
        return {row.filing_id: row for row in (await self._session.execute(statement)).scalars()}

    @staticmethod
    def delivered(entry: OutboxEntry, now: datetime) -> None:
        entry.state, entry.delivered_at, entry.lease_until = DELIVERED, now, None
        entry.last_error = None

    @staticmethod
    def refused(entry: OutboxEntry, code: str) -> None:
        entry.state, entry.lease_until, entry.last_error = REFUSED, None, code[:64]

    @staticmethod
    def retry_at(entry: OutboxEntry, at: datetime, error: str) -> None:
        entry.next_attempt_at, entry.lease_until, entry.last_error = at, None, error[:64]

    @staticmethod
    def dead(entry: OutboxEntry, error: str) -> None:
        entry.state, entry.lease_until, entry.last_error = DEAD, None, error[:64]

    async def status(self) -> OutboxStatus:
        depth, oldest = (
            await self._session.execute(
                select(func.count(), func.min(OutboxEntry.created_at)).where(
                    OutboxEntry.state == PENDING
                )
            )
        ).one()
        dead_rows = await self._session.execute(
            select(
                Filing.ticket, OutboxEntry.created_at, OutboxEntry.attempts, OutboxEntry.last_error
            )
            .join(Filing, Filing.id == OutboxEntry.filing_id)
            .where(OutboxEntry.state == DEAD)
            .order_by(OutboxEntry.created_at)
        )
        return OutboxStatus(
            depth=depth,
            oldest_undelivered=oldest,
            dead=tuple(DeadLetter(*row) for row in dead_rows),
        )

    async def revive_dead(self, now: datetime) -> int:
        """Send every dead letter again, from a fresh count of attempts."""
        result = await self._session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.state == DEAD)
            .values(state=PENDING, attempts=0, next_attempt_at=now, lease_until=None)
        )
        return cast(CursorResult[Any], result).rowcount or 0
