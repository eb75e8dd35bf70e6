"""The one place that creates the database engine and hands out transactions."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import Executable
from sqlalchemy.util import greenlet_spawn

from bot.storage.driver_sql import Driver, discard_if_closed, driver_of

SQLITE_BUSY_TIMEOUT_MS = 10_000


class NeedsSession(Exception):
    """A lean unit was asked for SQLAlchemy: its work must run again in a full unit."""


class Unit:
    """One unit of work on one connection, without an ORM session unless one is asked for.

    The hot path (a USSD request, a Telegram update) runs a few fixed statements: through
    `driver` on PostgreSQL, through `execute` on SQLite. An ORM session costs more CPU to
    open and commit than those statements do, so it is made only for the work that needs
    one (a filing, a subscription), on the same connection and transaction.

    A lean unit (PostgreSQL) has the driver alone, without even a SQLAlchemy connection
    around it; asked for one, it raises NeedsSession before anything is committed."""

    def __init__(
        self, connection: AsyncConnection | None, driver: Driver | None, dialect_name: str
    ) -> None:
        self.connection = connection
        self.driver = driver
        self.dialect_name = dialect_name
        self._session: AsyncSession | None = None

    async def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        if self.connection is None:
            raise NeedsSession
        return await self.connection.execute(statement, params)

    async def session(self) -> AsyncSession:
        """An ORM session in this unit's transaction (made on first use)."""
        if self.connection is None:
            raise NeedsSession
        if self._session is None:
            self._session = AsyncSession(
                bind=self.connection,
                expire_on_commit=False,
                # Joins the unit's transaction: its commit flushes, the unit commits.
                join_transaction_mode="rollback_only",
            )
        return self._session

    async def _finish(self) -> None:
        if self._session is not None:
            await self._session.commit()
            await self._session.close()

    async def _abandon(self) -> None:
        if self._session is not None:
            await self._session.close()


class Database:
    """An async engine plus a session factory; `transaction()` is one unit of work."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside BEGIN … COMMIT (ROLLBACK on any exception)."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def unit(self, *, lean: bool = False) -> AsyncIterator[Unit]:
        """A Unit inside BEGIN … COMMIT (ROLLBACK on any exception). `lean`: on
        PostgreSQL, the driver alone (see Unit)."""
        if lean and not self.is_sqlite:
            async with self._lean_unit(transaction=True) as unit:
                yield unit
            return
        async with self.engine.connect() as connection, connection.begin():
            driver = None if self.is_sqlite else await driver_of(connection)
            unit = Unit(connection, driver, self.engine.dialect.name)
            try:
                yield unit
            except BaseException:
                await unit._abandon()
                raise
            await unit._finish()

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Unit]:
        """A lean Unit whose statements each commit on their own: no BEGIN and COMMIT
        round trips on PostgreSQL. For work that needs no atomicity across its statements.
        SQLite (embedded, no network) keeps its usual transaction."""
        if self.is_sqlite:
            async with self.unit() as unit:
                yield unit
            return
        async with self._lean_unit(transaction=False) as unit:
            yield unit

    @asynccontextmanager
    async def _lean_unit(self, *, transaction: bool) -> AsyncIterator[Unit]:
        """A pooled connection's driver, in a transaction of the driver's own. On any
        failure with the transaction open, the connection is closed rather than returned:
        that aborts the transaction, and no half-done one goes back to the pool."""
        fairy = await self.engine.raw_connection()
        raw: asyncpg.Connection = fairy.driver_connection
        broken = False

        async def discard() -> None:
            nonlocal broken
            broken = True

        async def send(command: str) -> None:
            try:
                await raw.execute(command)
            except Exception as error:
                await discard_if_closed(discard, raw, error)
                raise

        try:
            if transaction:
                await send("BEGIN")
            yield Unit(None, Driver(raw, discard), "postgresql")
            if transaction:
                await send("COMMIT")
        finally:
            if broken or raw.is_closed() or raw.is_in_transaction():
                await greenlet_spawn(fairy.invalidate)
            await greenlet_spawn(fairy.close)

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


def open_database(url: str, *, echo: bool = False, pool_size: int = 20) -> Database:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return Database(_sqlite_engine(url, echo=echo))
    # hide_parameters: an SQL error message must not carry a NIK hash, a name or a ticket.
    engine = create_async_engine(
        url,
        echo=echo,
        # Connections kept open: enough for the requests in flight at a busy moment, since
        # one opened beyond them (the overflow) is closed again when returned, and opening
        # one costs more CPU than a whole request.
        pool_size=pool_size,
        max_overflow=pool_size // 2,
        # No ping before every checkout (a round trip per transaction): connections are
        # renewed every few minutes, and a dropped one fails one unit of work, which the
        # dialog engine runs again once on a fresh connection.
        pool_recycle=300,
        hide_parameters=True,
    )
    return Database(engine)


def _sqlite_engine(url: str, *, echo: bool) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        # Private from the start: the file holds sealed personal data and keyed hashes.
        Path(database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    # One connection: SQLite has one writer at a time anyway, and waiting for the pool is a
    # fair FIFO queue, whereas writers on many connections retry the lock in sleeps and
    # can starve past the busy timeout under load ("database is locked").
    engine = create_async_engine(
        url,
        echo=echo,
        hide_parameters=True,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=1,
        max_overflow=0,
    )

    # pysqlite's own transaction handling defers BEGIN and then fails lock upgrades with
    # "database is locked" under concurrent writers. Take control: every unit of work
    # begins IMMEDIATE, so writers queue on the busy timeout instead of failing.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
