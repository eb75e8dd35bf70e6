"""Admission counters and owners' matches over one session (the caller's transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, case, delete, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admission import NIK_FAILURES, Counter
from bot.storage.models import AdmissionCounter, NikMatch

_UNBOUNDED = 2**31 - 1


class AdmissionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        dialect = session.get_bind().dialect.name
        self._insert = postgresql_insert if dialect == "postgresql" else sqlite_insert

    async def take_all(
        self, counters: Sequence[Counter], owner: tuple[str, str] | None = None
    ) -> set[tuple[str, str]]:
        """Count one unit of every counter with room, in one statement; the (scope, key)
        of those counted. The caller gives back what it took if any was full.

        `owner` = (nik_hash, address_hash): an address that matched that NIK before is
        not held back by the NIK's counter (its cap becomes unbounded, in the statement
        itself, so this costs no extra round trip).
        """
        table = AdmissionCounter.__table__
        rows = []
        for counter in counters:
            cap: Any = counter.limit
            if owner is not None and counter.scope == NIK_FAILURES:
                matched = (
                    select(NikMatch.nik_hash)
                    .where(NikMatch.nik_hash == owner[0], NikMatch.address_hash == owner[1])
                    .exists()
                )
                cap = case((matched, literal(_UNBOUNDED)), else_=literal(counter.limit))
            rows.append(
                {
                    "scope": counter.scope,
                    "key_hash": counter.key,
                    "window_start": counter.window_start,
                    "used": 1,
                    "cap": cap,
                }
            )
        upsert = self._insert(AdmissionCounter).values(rows)
        statement = upsert.on_conflict_do_update(
            index_elements=["scope", "key_hash", "window_start"],
            set_={"used": table.c.used + 1, "cap": upsert.excluded.cap},
            where=table.c.used < upsert.excluded.cap,
        ).returning(table.c.scope, table.c.key_hash)
        return {(scope, key) for scope, key in (await self._session.execute(statement)).all()}

    async def give_back_all(self, counters: Sequence[Counter]) -> None:
        """One unit of each back, in one statement."""
        if not counters:
            return
        await self._session.execute(
            update(AdmissionCounter)
            .where(
                or_(
                    *(
                        and_(
                            AdmissionCounter.scope == c.scope,
                            AdmissionCounter.key_hash == c.key,
                            AdmissionCounter.window_start == c.window_start,
                        )
                        for c in counters
                    )
                ),
                AdmissionCounter.used > 0,
            )
            .values(used=AdmissionCounter.used - 1)
        )

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
