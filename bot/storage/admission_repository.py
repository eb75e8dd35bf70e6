"""Admission counters and owners' matches over one session (the caller's transaction)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, delete, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admission import NIK_FAILURES, Counter
from bot.storage.database import Unit
from bot.storage.driver_sql import DriverStatement, driver_in
from bot.storage.models import AdmissionCounter, NikMatch

_UNBOUNDED = 2**31 - 1
_COUNTERS = cast(Table, AdmissionCounter.__table__)
_MATCHES = cast(Table, NikMatch.__table__)


# Statements over the tables, not the mapped classes: given parameters, the ORM would
# take an insert of a mapped class for a bulk insert of objects.


def _param(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


@functools.cache
def _take_statement(insert: Any, rows: int, owner_row: int | None) -> Any:
    """The upsert counting one unit of `rows` counters, built once per shape: with
    bind parameters only, so it is compiled once too. The counter at `owner_row` is
    unbounded for an address that matched the NIK before (a CASE EXISTS, no round trip)."""
    table = _COUNTERS
    values = []
    for n in range(rows):
        cap: Any = _param(f"cap_{n}", table.c.cap)
        if n == owner_row:
            matched = (
                select(NikMatch.nik_hash)
                .where(
                    NikMatch.nik_hash == _param("owner_nik", _MATCHES.c.nik_hash),
                    NikMatch.address_hash == _param("owner_address", _MATCHES.c.address_hash),
                )
                .exists()
            )
            cap = case((matched, literal(_UNBOUNDED)), else_=cap)
        values.append(
            {
                "scope": _param(f"scope_{n}", table.c.scope),
                "key_hash": _param(f"key_{n}", table.c.key_hash),
                "window_start": _param(f"window_{n}", table.c.window_start),
                "used": literal(1),
                "cap": cap,
            }
        )
    upsert = insert(table).values(values)
    return upsert.on_conflict_do_update(
        index_elements=["scope", "key_hash", "window_start"],
        set_={"used": table.c.used + 1, "cap": upsert.excluded.cap},
        where=table.c.used < upsert.excluded.cap,
    ).returning(table.c.scope, table.c.key_hash)


@functools.cache
def _give_back_statement(rows: int) -> Any:
    table = _COUNTERS
    return (
        update(table)
        .where(
            or_(
                *(
                    and_(
                        table.c.scope == _param(f"scope_{n}", table.c.scope),
                        table.c.key_hash == _param(f"key_{n}", table.c.key_hash),
                        table.c.window_start == _param(f"window_{n}", table.c.window_start),
                    )
                    for n in range(rows)
                )
            ),
            table.c.used > 0,
        )
        .values(used=table.c.used - 1)
    )


@functools.cache
def _record_match_statement(insert: Any) -> Any:
    table = _MATCHES
    statement = insert(table).values(
        nik_hash=_param("nik_hash", table.c.nik_hash),
        address_hash=_param("address_hash", table.c.address_hash),
        matched_at=_param("matched_at", table.c.matched_at),
    )
    return statement.on_conflict_do_update(
        index_elements=["nik_hash", "address_hash"],
        set_={"matched_at": statement.excluded.matched_at},
    )


@functools.cache
def _on_driver(statement: Any) -> DriverStatement:
    return DriverStatement.of(statement)


def _counter_params(counters: Sequence[Counter]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for n, counter in enumerate(counters):
        params[f"scope_{n}"] = counter.scope
        params[f"key_{n}"] = counter.key
        params[f"window_{n}"] = counter.window_start
        params[f"cap_{n}"] = counter.limit
    return params


class AdmissionRepository:
    """On PostgreSQL the statements go straight through asyncpg (bot/storage/driver_sql)."""

    def __init__(self, work: Unit | AsyncSession) -> None:
        self._work = work
        dialect = work.dialect_name if isinstance(work, Unit) else work.get_bind().dialect.name
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
        owner_row = None
        params = _counter_params(counters)
        if owner is not None:
            scopes = [counter.scope for counter in counters]
            owner_row = scopes.index(NIK_FAILURES) if NIK_FAILURES in scopes else None
            params["owner_nik"], params["owner_address"] = owner
        statement = _take_statement(self._insert, len(counters), owner_row)
        rows = await self._rows(statement, params)
        return {(scope, key) for scope, key in rows}

    async def give_back_all(self, counters: Sequence[Counter]) -> None:
        """One unit of each back, in one statement."""
        if not counters:
            return
        await self._rows(_give_back_statement(len(counters)), _counter_params(counters))

    async def record_match(self, nik_hash: str, address_hash: str, at: datetime) -> None:
        params = {"nik_hash": nik_hash, "address_hash": address_hash, "matched_at": at}
        await self._rows(_record_match_statement(self._insert), params)

    async def _rows(self, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows it returns (none for a statement without RETURNING)."""
        work = self._work
        driver = work.driver if isinstance(work, Unit) else await driver_in(work)
        if driver is not None:
            return [tuple(record) for record in await driver.fetch(_on_driver(statement), params)]
        result = await work.execute(statement, params)
        returns_rows = cast(CursorResult[Any], result).returns_rows
        return [tuple(row) for row in result.all()] if returns_rows else []

    async def forget_windows_before(self, moment: datetime) -> int:
        """Drop counters of windows that started before `moment` (all ended by now)."""
        result = await self._work.execute(
            delete(AdmissionCounter).where(AdmissionCounter.window_start < moment)
        )
        return cast(CursorResult[Any], result).rowcount or 0

    async def forget_matches_before(self, moment: datetime) -> int:
        result = await self._work.execute(delete(NikMatch).where(NikMatch.matched_at < moment))
        return cast(CursorResult[Any], result).rowcount or 0
