"""Admission counters and owners' matches over one session (the caller's transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admission import Counter
from bot.storage.models import AdmissionCounter, NikMatch


class AdmissionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        dialect = session.get_bind().dialect.name
        self._insert = postgresql_insert if dialect == "postgresql" else sqlite_insert

    async def take(self, counter: Counter) -> bool:
        """Count one unit if the window still has room; False (nothing counted) if not.

        One statement: the row lock taken by the upsert is what makes it atomic, so N
        concurrent takers of the last unit see exactly one success.
        """
        table = AdmissionCounter.__table__
        statement = (
            self._insert(AdmissionCounter)
            .values(
                scope=counter.scope,
                key_hash=counter.key,
                window_start=counter.window_start,
                used=1,
            )
            .on_conflict_do_update(
                index_elements=["scope", "key_hash", "window_start"],
                set_={"used": table.c.used + 1},
                where=table.c.used < counter.limit,
            )
            .returning(table.c.used)
        )
        return (await self._session.execute(statement)).first() is not None

    async def give_back(self, counter: Counter) -> None:
        await self._session.execute(
            update(AdmissionCounter)
            .where(
                AdmissionCounter.scope == counter.scope,
                AdmissionCounter.key_hash == counter.key,
                AdmissionCounter.window_start == counter.window_start,
                AdmissionCounter.used > 0,
            )
            .values(used=AdmissionCounter.used - 1)
        )

    async def matched_before(self, nik_hash: str, address_hash: str) -> bool:
        statement = select(NikMatch.matched_at).where(
            NikMatch.nik_hash == nik_hash, NikMatch.address_hash == address_hash
        )
        return (await self._session.execute(statement)).first() is not None

    async def record_match(self, nik_hash: str, address_hash: str, at: datetime) -> None:
        statement = self._insert(NikMatch).values(
            nik_hash=nik_hash, address_hash=address_hash, matched_at=at
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["nik_hash", "address_hash"], set_={"matched_at": at}
            )
        )

    async def forget_windows_before(self, moment: datetime) -> int:
        """Drop counters of windows that started before `moment` (all ended by now)."""
        result = await self._session.execute(
            delete(AdmissionCounter).where(AdmissionCounter.window_start < moment)
        )
        return cast(CursorResult[Any], result).rowcount or 0

    async def forget_matches_before(self, moment: datetime) -> int:
        result = await self._session.execute(delete(NikMatch).where(NikMatch.matched_at < moment))
        return cast(CursorResult[Any], result).rowcount or 0

    async def forget_address(self, address_hash: str) -> int:
        """Erasure: the owner's matches of this address (counters expire on their own)."""
        result = await self._session.execute(
            delete(NikMatch).where(NikMatch.address_hash == address_hash)
        )
        return cast(CursorResult[Any], result).rowcount or 0
