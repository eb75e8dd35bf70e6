"""Subscriptions, quarterly notices and notice runs: queries over one session.

A page of the change feed is joined with the subscriptions inside the database, one
INSERT … SELECT per page: the run never holds the subscriptions in memory.

The notices of subscriptions a PKH facilitator holds are claimed by chat, all of one
chat's at once, to go out as one digest (`claim_digests`); the others one by one
(`claim_due`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    column,
    delete,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY, Insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.facilitator_repository import deactivated_before
from bot.storage.models import (
    Conversation,
    FacilitatorAccount,
    Notice,
    NoticeRun,
    Subscription,
)
from bot.storage.singleton_rows import lock_or_create

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


@dataclass(frozen=True, slots=True)
class DigestNotice:
    """One household's notice in a facilitator's digest."""

    id: int
    subscription_id: int
    sealed_nik: bytes
    change: str
    attempts: int


@dataclass(frozen=True, slots=True)
class DueDigest:
    """Every pending notice of one facilitator chat, claimed together."""

    channel: str
    address_hash: str
    sealed_address: bytes
    language: str
    notices: tuple[DigestNotice, ...]


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


# The subscriber's language: their conversation's, Indonesian if it is gone.
_LANGUAGE = func.coalesce(Conversation.language, "id")


def _with_subscriber(*columns: Any) -> Select[Any]:
    """Notice rows with their subscription and the subscriber's conversation."""
    return (
        select(*columns)
        .select_from(Notice)
        .join(Subscription, Subscription.id == Notice.subscription_id)
        .outerjoin(
            Conversation,
            and_(
                Conversation.channel == Subscription.channel,
                Conversation.address_hash == Subscription.address_hash,
            ),
        )
    )


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

    async def count_own(self, channel: str, address_hash: str) -> int:
        """The active subscriptions a chat or phone holds for itself (no facilitator's)."""
        statement = select(func.count()).where(
            Subscription.channel == channel,
            Subscription.address_hash == address_hash,
            Subscription.facilitator_id.is_(None),
            Subscription.state == ACTIVE,
        )
        return int((await self._session.execute(statement)).scalar_one())

    async def count_held_by(self, facilitator_id: str) -> int:
        """The active subscriptions a facilitator holds, from whichever chat."""
        statement = select(func.count()).where(
            Subscription.facilitator_id == facilitator_id, Subscription.state == ACTIVE
        )
        return int((await self._session.execute(statement)).scalar_one())

    def add(self, subscription: Subscription) -> None:
        self._session.add(subscription)

    async def retire(self, subscription_id: int, now: datetime) -> None:
        await self._session.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id)
            .values(state=RETIRED, retired_at=now)
        )

    async def retire_digests(self, channel: str, address_hash: str, now: datetime) -> None:
        """Every subscription a facilitator holds in this chat (the chat is gone)."""
        await self._session.execute(
            update(Subscription)
            .where(
                Subscription.channel == channel,
                Subscription.address_hash == address_hash,
                Subscription.facilitator_id.is_not(None),
                Subscription.state == ACTIVE,
            )
            .values(state=RETIRED, retired_at=now)
        )

    async def held_by(self, facilitator_id: str) -> list[Subscription]:
        """The active subscriptions a facilitator holds, from whichever chat."""
        statement = select(Subscription).where(
            Subscription.facilitator_id == facilitator_id, Subscription.state == ACTIVE
        )
        return list((await self._session.execute(statement)).scalars())

    async def retire_of_inactive_facilitators(self, now: datetime) -> None:
        """Every subscription held by a facilitator who was deactivated."""
        inactive = select(FacilitatorAccount.id).where(FacilitatorAccount.active.is_(False))
        await self._session.execute(
            update(Subscription)
            .where(Subscription.facilitator_id.in_(inactive), Subscription.state == ACTIVE)
            .values(state=RETIRED, retired_at=now)
        )

    async def forget_stopped_before(self, cutoff: datetime) -> int:
        """Delete the subscriptions stopped or retired before `cutoff`, and their notices.
        Rows of subscriptions deleted."""
        return await self._delete_with_notices(
            and_(Subscription.state == RETIRED, Subscription.retired_at < cutoff)
        )

    async def forget_held_by_deactivated_before(self, cutoff: datetime) -> int:
        """Delete the subscriptions held by facilitators deactivated before `cutoff`,
        whatever their state, and their notices. A household a chat took over for itself
        names no facilitator, and stays. Rows of subscriptions deleted."""
        return await self._delete_with_notices(
            Subscription.facilitator_id.in_(deactivated_before(cutoff))
        )

    async def _delete_with_notices(self, which: ColumnElement[bool]) -> int:
        # Notices first, as erasure does: the cascade is not trusted alone (SQLite
        # enforces foreign keys only on connections that ask). A sweep has nothing
        # loaded, so the session need not be synchronised.
        await self._session.execute(
            delete(Notice)
            .where(Notice.subscription_id.in_(select(Subscription.id).where(which)))
            .execution_options(synchronize_session=False)
        )
        statement = delete(Subscription).where(which).execution_options(synchronize_session=False)
        result = cast(CursorResult[Any], await self._session.execute(statement))
        return result.rowcount or 0


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
        deliver: the others wait for a process that can), leased until now + lease.
        Notices of subscriptions a facilitator holds are left to `claim_digests`."""
        due = (
            self._pending(quarter, channels)
            .with_only_columns(Notice.id)
            .where(Subscription.facilitator_id.is_(None), _unleased(now))
            .order_by(Notice.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Notice)
        )
        ids = list((await self._session.execute(due)).scalars())
        if not ids:
            return []
        await self._lease(ids, now, lease)
        rows = await self._session.execute(
            _with_subscriber(
                Notice.id,
                Notice.subscription_id,
                Subscription.channel,
                Subscription.address_hash,
                Subscription.sealed_address,
                _LANGUAGE,
                Notice.change,
                Notice.attempts,
            )
            .where(Notice.id.in_(ids))
            .order_by(Notice.id)
        )
        return [DueNotice(*row) for row in rows]

    async def claim_digests(
        self,
        quarter: str,
        channels: Collection[str],
        now: datetime,
        limit: int,
        lease: timedelta,
    ) -> list[DueDigest]:
        """The pending notices of at most `limit` facilitator chats on `channels`, every
        notice of each chat at once, leased until now + lease. Only those of active
        facilitators: `retire_unserved` takes the others.

        The chats are picked without a lock, then all their notices are locked in id
        order, waiting (not skipping) for a run that holds some: that run's claim or
        record commits, the rows it leased or finished no longer qualify, and so a
        chat's digest is never split between two runs, nor sent twice. (SQLite has
        one writer at a time.)"""
        held = self._pending_held(quarter, channels).where(
            FacilitatorAccount.active.is_(True),
            # Only to the chat the facilitator uses now: not to a lost phone's.
            FacilitatorAccount.chat_hash == Subscription.address_hash,
            _unleased(now),
        )
        # The chats of the first `limit` notices, as claim_due takes them: at least one.
        first = (
            held.with_only_columns(Subscription.channel, Subscription.address_hash)
            .order_by(Notice.id)
            .limit(limit)
        )
        picked = list(dict.fromkeys(tuple(row) for row in await self._session.execute(first)))
        if not picked:
            return []
        locked = (
            held.with_only_columns(Notice.id)
            .where(tuple_(Subscription.channel, Subscription.address_hash).in_(picked))
            .order_by(Notice.id)
            .with_for_update(of=Notice)
        )
        ids = list((await self._session.execute(locked)).scalars())
        if not ids:
            return []
        await self._lease(ids, now, lease)
        rows = await self._session.execute(
            _with_subscriber(
                Subscription.channel,
                Subscription.address_hash,
                Subscription.sealed_address,
                _LANGUAGE,
                Notice.id,
                Notice.subscription_id,
                Subscription.sealed_nik,
                Notice.change,
                Notice.attempts,
            )
            .where(Notice.id.in_(ids))
            .order_by(Subscription.channel, Subscription.address_hash, Notice.id)
        )
        digests = []
        for (channel, address_hash), group in groupby(rows, key=lambda row: (row[0], row[1])):
            chat = list(group)
            digests.append(
                DueDigest(
                    channel,
                    address_hash,
                    chat[0][2],
                    chat[0][3],
                    tuple(DigestNotice(*row[4:]) for row in chat),
                )
            )
        return digests

    async def retire_unserved(self, quarter: str, channels: Collection[str], now: datetime) -> int:
        """Retire the pending notices of `quarter` whose facilitator was deactivated, or no
        longer uses the chat they were subscribed from (a new code unlinked it: the phone
        may be lost): they are not sent. Rows another run holds are skipped (it finishes
        them)."""
        unlinked = or_(
            FacilitatorAccount.chat_hash.is_(None),
            FacilitatorAccount.chat_hash != Subscription.address_hash,
        )
        unserved = (
            self._pending_held(quarter, channels)
            .with_only_columns(Notice.id)
            .where(or_(FacilitatorAccount.active.is_(False), unlinked), _unleased(now))
            .with_for_update(skip_locked=True, of=Notice)
        )
        ids = list((await self._session.execute(unserved)).scalars())
        if ids:
            await self.finish([(notice_id, GONE) for notice_id in ids], now)
        return len(ids)

    async def _lease(self, ids: Sequence[int], now: datetime, lease: timedelta) -> None:
        """Claimed: nobody else takes these until the lease ends; one attempt more."""
        await self._session.execute(
            update(Notice)
            .where(Notice.id.in_(ids))
            .values(lease_until=now + lease, attempts=Notice.attempts + 1)
        )

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

    @classmethod
    def _pending_held(cls, quarter: str, channels: Collection[str]) -> Select[int]:
        """Pending notices of subscriptions a facilitator holds, with the facilitator."""
        return cls._pending(quarter, channels).join(
            FacilitatorAccount, FacilitatorAccount.id == Subscription.facilitator_id
        )

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


def _unleased(now: datetime) -> ColumnElement[bool]:
    return or_(Notice.lease_until.is_(None), Notice.lease_until <= now)


class NoticeRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self, quarter: str, now: datetime) -> NoticeRun:
        """The run's row, locked, made on first use (two runs may start at once)."""
        return await lock_or_create(
            self._session,
            NoticeRun,
            quarter,
            quarter=quarter,
            cursor=None,
            ingested=False,
            changes_read=0,
            started_at=now,
            updated_at=now,
        )

    async def get(self, quarter: str) -> NoticeRun | None:
        return await self._session.get(NoticeRun, quarter)
