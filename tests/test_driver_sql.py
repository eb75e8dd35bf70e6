"""The hot path's statements sent through asyncpg belong to the unit's transaction: they
commit and roll back with the ORM work beside them, and autocommit stays autocommit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, bindparam, delete, func, insert, select

from bot.storage.database import Database, NeedsSession, open_database
from bot.storage.driver_sql import DriverStatement, driver_in
from bot.storage.migrate import upgrade_to_head
from bot.storage.models import NikMatch

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

_TABLE = cast(Table, NikMatch.__table__)
_INSERT = DriverStatement.of(
    insert(_TABLE).values(
        nik_hash=bindparam("nik_hash", type_=_TABLE.c.nik_hash.type),
        address_hash="fixed-address",
        matched_at=bindparam("matched_at", type_=_TABLE.c.matched_at.type),
    )
)
_DELETE_AGAIN = DriverStatement.of(delete(_TABLE).where(_TABLE.c.nik_hash == "again"))
AT = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


async def _ready(database_url: str) -> Database:
    database = open_database(database_url)
    await upgrade_to_head(database)
    return database


async def _count(database: Database) -> int:
    async with database.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(_TABLE))).scalar_one())


def test_a_compiled_statement_binds_literals_and_converts_times_to_utc() -> None:
    wib = timezone(timedelta(hours=7))
    arguments = _INSERT.arguments({"nik_hash": "h", "matched_at": AT.astimezone(wib)})
    assert "h" in arguments and "fixed-address" in arguments
    [moment] = [a for a in arguments if isinstance(a, datetime)]
    assert moment == AT and moment.utcoffset() == timedelta(0)


@ON_POSTGRESQL
async def test_driver_statements_commit_and_roll_back_with_the_unit(database_url: str) -> None:
    database = await _ready(database_url)
    try:
        with pytest.raises(RuntimeError):
            async with database.unit() as unit:
                assert unit.driver is not None
                await unit.driver.execute(_INSERT, {"nik_hash": "a", "matched_at": AT})
                # An ORM session of the unit sees the driver's uncommitted row.
                session = await unit.session()
                seen = await session.execute(select(func.count()).select_from(_TABLE))
                assert seen.scalar_one() == 1
                raise RuntimeError("the step failed")
        assert await _count(database) == 0
        async with database.unit() as unit:
            assert unit.driver is not None
            await unit.driver.execute(_INSERT, {"nik_hash": "b", "matched_at": AT})
            session = await unit.session()
            session.add(NikMatch(nik_hash="c", address_hash="x", matched_at=AT))
        assert await _count(database) == 2  # the driver's row and the session's, committed
    finally:
        await database.dispose()


@ON_POSTGRESQL
async def test_on_an_autocommit_unit_each_statement_commits(database_url: str) -> None:
    database = await _ready(database_url)
    try:
        with pytest.raises(RuntimeError):
            async with database.autocommit() as unit:
                assert unit.driver is not None
                await unit.driver.execute(_INSERT, {"nik_hash": "c", "matched_at": AT})
                raise RuntimeError("after the statement")
        assert await _count(database) == 1
    finally:
        await database.dispose()


async def test_sqlite_has_no_driver_path(tmp_path: Path) -> None:
    database = open_database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    try:
        async with database.unit() as unit:
            assert unit.driver is None
        async with database.transaction() as session:
            assert await driver_in(session) is None
    finally:
        await database.dispose()


@ON_POSTGRESQL
async def test_a_lean_unit_commits_rolls_back_and_never_pools_an_open_transaction(
    database_url: str,
) -> None:
    database = await _ready(database_url)
    try:
        async with database.unit(lean=True) as unit:
            assert unit.connection is None and unit.driver is not None
            await unit.driver.execute(_INSERT, {"nik_hash": "kept", "matched_at": AT})
        with pytest.raises(RuntimeError):
            async with database.unit(lean=True) as unit:
                assert unit.driver is not None
                await unit.driver.execute(_INSERT, {"nik_hash": "dropped", "matched_at": AT})
                raise RuntimeError("the step failed")
        # Cancelled in the middle, as a look-up budget or a shutdown may do.
        entered = asyncio.Event()

        async def hang() -> None:
            async with database.unit(lean=True) as unit:
                assert unit.driver is not None
                await unit.driver.execute(_INSERT, {"nik_hash": "cut", "matched_at": AT})
                entered.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(hang())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _count(database) == 1  # only the committed row
        # Every pooled connection is outside any transaction: the next units work.
        for _ in range(12):
            async with database.unit(lean=True) as unit:
                assert unit.driver is not None
                await unit.driver.execute(_INSERT, {"nik_hash": "again", "matched_at": AT})
                await unit.driver.execute(_DELETE_AGAIN, {})
    finally:
        await database.dispose()


@ON_POSTGRESQL
async def test_a_lean_unit_asked_for_the_orm_says_so_before_anything_commits(
    database_url: str,
) -> None:
    database = await _ready(database_url)
    try:
        with pytest.raises(NeedsSession):
            async with database.unit(lean=True) as unit:
                assert unit.driver is not None
                await unit.driver.execute(_INSERT, {"nik_hash": "x", "matched_at": AT})
                await unit.session()
        assert await _count(database) == 0
    finally:
        await database.dispose()
