"""Rows made on first use and then locked: a notice run per quarter, a feed's cursor.

Two processes may ask for the same absent row at once (two instances starting, a timer
and an operator's command). Reading first and inserting when absent lets both insert,
and one fails on the key. Here the row is inserted unless present, then locked: the
second waits for the first's commit and reads its row.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Base

RowT = TypeVar("RowT", bound=Base)


async def lock_or_create(
    session: AsyncSession, model: type[RowT], key: Any, **initial: Any
) -> RowT:
    """The row of `model` under primary key `key`, locked FOR UPDATE; made from
    `initial` (which holds the key's column too) if absent. Such rows are never deleted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(insert(model).values(**initial).on_conflict_do_nothing())
    row = await session.get(model, key, with_for_update=True, populate_existing=True)
    if row is None:  # only if someone deleted it between the two statements
        raise LookupError(f"{model.__tablename__} row vanished while being locked")
    return row
