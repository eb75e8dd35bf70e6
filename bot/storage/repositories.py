"""Repositories: intention-revealing queries over one session (the caller's unit of work)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Conversation


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(
        self, channel: str, address_hash: str, *, blank: Callable[[], Conversation]
    ) -> Conversation:
        """The conversation row, locked until the transaction ends; made by `blank` if new.

        Two instances receiving updates for the same chat serialise here (FOR UPDATE on
        PostgreSQL; SQLite transactions are already exclusive).
        """
        row = await self._select_for_update(channel, address_hash)
        if row is not None:
            return row
        dialect = self._session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        new = blank()
        values = {column.key: getattr(new, column.key) for column in Conversation.__table__.c}
        await self._session.execute(insert(Conversation).values(values).on_conflict_do_nothing())
        row = await self._select_for_update(channel, address_hash)
        assert row is not None, "row inserted or already there"
        return row

    async def _select_for_update(self, channel: str, address_hash: str) -> Conversation | None:
        statement = (
            select(Conversation)
            .where(Conversation.channel == channel, Conversation.address_hash == address_hash)
            .with_for_update()
        )
        return (await self._session.execute(statement)).scalar_one_or_none()

    async def forget_unconsented_idle_since(self, moment: datetime) -> int:
        """Drop conversations of people who never agreed (or withdrew) and left long ago."""
        result = await self._session.execute(
            delete(Conversation).where(
                Conversation.consent_version.is_(None), Conversation.updated_at < moment
            )
        )
        return cast(CursorResult[Any], result).rowcount or 0
