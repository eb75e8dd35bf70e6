"""The hottest statements sent straight through asyncpg, inside SQLAlchemy's transaction.

Every USSD request and Telegram update runs a few statements that never change. Through
SQLAlchemy each one costs about as much CPU again as the whole rest of the request
(cache key, compiled-statement lookup, result machinery). Here each is still written once
in SQLAlchemy Core, compiled once for asyncpg at import, and then sent with the driver's
own prepared-statement cache. It runs on the connection, and in the transaction, of the
session the caller holds, so it commits or rolls back with the ORM work beside it.

PostgreSQL only: SQLite (embedded, one connection) keeps the Core path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


class ConnectionDropped(RuntimeError):
    """The database connection broke under a driver statement; it has been discarded."""


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A Core statement compiled once to asyncpg's positional SQL."""

    sql: str
    names: tuple[str, ...]
    # Per position: the type's bind processor (UTC for datetimes), or None.
    processors: tuple[Callable[[Any], Any] | None, ...]
    # Per position: the value bound in the statement itself (a literal), if any.
    fixed: tuple[tuple[bool, Any], ...]

    @classmethod
    def of(cls, statement: ClauseElement) -> DriverStatement:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        names = tuple(compiled.positiontup or ())
        processors = tuple(
            compiled.binds[name].type._cached_bind_processor(_DIALECT) for name in names
        )
        fixed = tuple(
            (not compiled.binds[name].required and compiled.binds[name].value is not None,
             compiled.binds[name].value)
            for name in names
        )  # fmt: skip
        return cls(compiled.string, names, processors, fixed)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, process, (has_fixed, fixed) in zip(
            self.names, self.processors, self.fixed, strict=True
        ):
            value = params[name] if name in params or not has_fixed else fixed
            values.append(value if process is None or value is None else process(value))
        return values


class Driver:
    """An asyncpg connection of SQLAlchemy's pool, in the transaction of its unit (if any).
    `discard` takes a connection found broken out of the pool."""

    def __init__(self, raw: asyncpg.Connection, discard: Callable[[], Awaitable[None]]) -> None:
        self._raw = raw
        self._discard = discard

    async def fetchrow(
        self, statement: DriverStatement, params: Mapping[str, Any]
    ) -> asyncpg.Record | None:
        rows = await self.fetch(statement, params)
        return rows[0] if rows else None

    async def fetch(
        self, statement: DriverStatement, params: Mapping[str, Any]
    ) -> Sequence[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self._raw.fetch(
                statement.sql, *statement.arguments(params)
            )
            return rows
        except Exception as error:
            await discard_if_closed(self._discard, self._raw, error)
            raise

    async def execute(self, statement: DriverStatement, params: Mapping[str, Any]) -> None:
        await self.fetch(statement, params)


async def discard_if_closed(
    discard: Callable[[], Awaitable[None]], raw: asyncpg.Connection, error: BaseException
) -> None:
    """A failure on a connection that is gone (server restart, a killed backend, a cut)
    discards it, as SQLAlchemy would, and says so with ConnectionDropped: the caller's
    unit of work may run again on a fresh one. Other errors are the caller's."""
    if raw.is_closed():
        await discard()
        raise ConnectionDropped(type(error).__name__) from error


async def driver_in(session: AsyncSession) -> Driver | None:
    """The driver under `session`'s connection with its transaction begun; None unless
    the database is PostgreSQL through asyncpg."""
    if session.get_bind().dialect.driver != "asyncpg":
        return None
    connection = await session.connection()
    return await driver_of(connection)


async def driver_of(connection: AsyncConnection) -> Driver:
    """The driver of a SQLAlchemy connection, with its transaction begun if it has one
    (an autocommit connection has none: each statement commits on its own)."""
    raw = await connection.get_raw_connection()
    adapted: Any = raw.dbapi_connection
    if connection.in_transaction() and adapted._transaction is None:
        # SQLAlchemy's asyncpg adapter sends BEGIN lazily, before its first statement;
        # ours may come first, so begin it here (tests/test_driver_sql.py pins this).
        try:
            await adapted._start_transaction()
        except Exception as error:
            await discard_if_closed(connection.invalidate, raw.driver_connection, error)
            raise
    driver_connection: asyncpg.Connection = raw.driver_connection
    return Driver(driver_connection, connection.invalidate)
