"""Subscriptions, quarterly notices and notice runs: queries over one session.

A page of the change feed is joined with the subscriptions inside the database, one
INSERT … SELECT per page: the run never holds the subscriptions in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    column,
    func,
    literal,
    or_,
    select,
    true,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY, Insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Conversation, Notice, NoticeRun, Subscription

ACTIVE, RETIRED = "active", "retired"
PENDING, SENT, HELD, GONE, FAILED = "pending", "sent", "held", "retired", "failed"


@dataclass(frozen=True, slots=True)
class DueNotice:
    """A notice to send, with what sending it needs (read under the claim's lock)."""

    id: int
    subscription_id: int
    channel: str
    address_hash: str
    sealed_address: bytes
    language: str
    change: str
    attempts: int


def _ingest_page_postgresql() -> Insert:
    """On PostgreSQL the page travels as two arrays (unnest): one statement, compiled and
    prepared once, instead of one with two parameters per change for every page."""
    page = (
        func.unnest(
            bindparam("nik_hashes", type_=ARRAY(String)), bindparam("changes", type_=ARRAY(Text))
        )
        .table_valued("nik_hash", "change")
        .render_derived(name="page")
    )
    subscriptions = Subscription.__table__.c
    matched = (
        select(
            subscriptions.id,
            bindparam("quarter", type_=String),
            page.c.change,
            literal(PENDING, String),
            literal(0),
        )
        .select_from(Subscription.__table__)
        .join(page, page.c.nik_hash == subscriptions.nik_hash)
        .where(subscriptions.state == ACTIVE)
    )
    return (
        postgresql_insert(cast(Table, Notice.__table__))
        .from_select(["subscription_id", "quarter", "change", "state", "attempts"], matched)
        .on_conflict_do_nothing()
    )


_INGEST_PAGE_POSTGRESQL = _ingest_page_postgresql()


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def of(self, channel: str, address_hash: str) -> list[Subscription]:
        statement = (
            select(Subscription)
            .where(
                Subscription.channel == channel,
                Subscription.address_hash == address_hash,
                Subscription.state == ACTIVE,
            )
            .order_by(Subscription.id)
        )
        return list((await self._session.execute(statement)).scalars())

    async def find(self, channel: str, address_hash: str, nik_hash: str) -> Subscription | None:
        statement = select(Subscription).where(
            Subscription.channel == channel,
            Subscription.address_hash == address_hash,
            Subscription.nik_hash == nik_hash,
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    def add(self, subscription: Subscription) -> None:
        self._session.add(subscription)

    async def retire(self, subscription_id: int, now: datetime) -> None:
        await self._session.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id)
            .values(state=RETIRED, retired_at=now)
        )


class NoticeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def ingest_page(self, quarter: str, changes: Sequence[tuple[str, str]]) -> int:
        """One notice per active subscription whose NIK hash is in `changes`
        ((nik_hash, change JSON) pairs); an existing (subscription, quarter) is left."""
        if not changes:
            return 0
        if self._session.get_bind().dialect.name == "postgresql":
            result = await self._session.execute(
                _INGEST_PAGE_POSTGRESQL,
                {
                    "quarter": quarter,
                    "nik_hashes": [nik_hash for nik_hash, _ in changes],
                    "changes": [change for _, change in changes],
                },
            )
            return int(getattr(result, "rowcount", 0) or 0)
        # A CTE rather than VALUES in FROM: SQLite cannot name the columns of the latter.
        page = (
            values(column("nik_hash", String), column("change", Text), name="page")
            .data(list(changes))
            .cte("page")
        )
        matched = (
            select(
                Subscription.id,
                literal(quarter, String),
                page.c.change,
                literal(PENDING, String),
                literal(0),
            )
            .join(page, page.c.nik_hash == Subscription.nik_hash)
            .where(Subscription.state == ACTIVE, true())
        )
        dialect = self._session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            insert(Notice)
            .from_select(["subscription_id", "quarter", "change", "state", "attempts"], matched)
            .on_conflict_do_nothing()
            .returning(Notice.id)  # rowcount of INSERT … SELECT is unreliable on SQLite
        )
        return len((await self._session.execute(statement)).all())

    async def claim_due(
        self,
        quarter: str,
        channels: Collection[str],
        now: datetime,
        limit: int,
        lease: timedelta,
    ) -> list[DueNotice]:
        """Up to `limit` pending notices of `quarter` on `channels` (those the caller can
        deliver: the others wait for a process that can), leased until now + lease."""
        due = (
            self._pending(quarter, channels)
            .with_only_columns(Notice.id)
            .where(or_(Notice.lease_until.is_(None), Notice.lease_until <= now))
            .order_by(Notice.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Notice)
        )
        ids = list((await self._session.execute(due)).scalars())
        if not ids:
            return []
        await self._session.execute(
            update(Notice)
            .where(Notice.id.in_(ids))
            .values(lease_until=now + lease, attempts=Notice.attempts + 1)
        )
        rows = await self._session.execute(
            select(
                Notice.id,
                Notice.subscription_id,
                Subscription.channel,
                Subscription.address_hash,
                Subscription.sealed_address,
                func.coalesce(Conversation.language, "id"),
                Notice.change,
                Notice.attempts,
            )
            .join(Subscription, Subscription.id == Notice.subscription_id)
            .outerjoin(
                Conversation,
                and_(
                    Conversation.channel == Subscription.channel,
                    Conversation.address_hash == Subscription.address_hash,
                ),
            )
            .where(Notice.id.in_(ids))
            .order_by(Notice.id)
        )
        return [DueNotice(*row) for row in rows]

    async def finish(self, outcomes: Sequence[tuple[int, str]], now: datetime) -> None:
        """Record (notice id, state) pairs; a pending one is released for another try."""
        for state in {state for _, state in outcomes}:
            ids = [notice_id for notice_id, s in outcomes if s == state]
            sent_at = now if state in (SENT, HELD) else None
            await self._session.execute(
                update(Notice)
                .where(Notice.id.in_(ids))
                .values(state=state, lease_until=None, sent_at=sent_at)
            )

    async def release(self, notice_id: int, not_before: datetime) -> None:
        """Back to pending, not to be tried again before `not_before`."""
        await self._session.execute(
            update(Notice).where(Notice.id == notice_id).values(lease_until=not_before)
        )

    async def pending_count(self, quarter: str, channels: Collection[str]) -> int:
        """Pending notices of `quarter` on `channels`, leased or not."""
        statement = self._pending(quarter, channels).with_only_columns(func.count())
        return int((await self._session.execute(statement)).scalar_one())

    @staticmethod
    def _pending(quarter: str, channels: Collection[str]) -> Select[int]:
        return (
            select(Notice.id)
            .join(Subscription, Subscription.id == Notice.subscription_id)
            .where(
                Notice.quarter == quarter,
                Notice.state == PENDING,
                Subscription.channel.in_(channels),
            )
        )

    async def counts(self, quarter: str) -> dict[str, int]:
        rows = await self._session.execute(
            select(Notice.state, func.count())
            .where(Notice.quarter == quarter)
            .group_by(Notice.state)
        )
        return {state: count for state, count in rows}


class NoticeRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self, quarter: str, now: datetime) -> NoticeRun:
        """The run's row, locked, made on first use."""
        row = await self._session.get(NoticeRun, quarter, with_for_update=True)
        if row is None:
            row = NoticeRun(
                quarter=quarter,
                cursor=None,
                ingested=False,
                changes_read=0,
                started_at=now,
                updated_at=now,
            )
            self._session.add(row)
            await self._session.flush()
        return row

    async def get(self, quarter: str) -> NoticeRun | None:
        return await self._session.get(NoticeRun, quarter)
