"""`bansos-bot keys rotate`: a new sealing key, every sealed value re-sealed under it, the
old keys retired. Keyed hashes are untouched: the hashing key never rotates.

The state of a rotation lives in the key file alone: while a key other than the current
one is still usable, a rotation is under way, and running `rotate` again carries it on
instead of making yet another key.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, RowMapping, and_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crypto import RELOAD_INTERVAL_S, KeyRing, SealBroken
from bot.dialog_engine import conversation_seal_context, last_reply_seal_context
from bot.facilitator_service import (
    household_seal_context,
    name_seal_context,
    phone_seal_context,
)
from bot.filer_messages import outbound_seal_context
from bot.filing_service import filer_seal_context, filing_seal_context
from bot.key_store import SealingKeys, read_keys, write_keys
from bot.storage.database import Database
from bot.storage.models import Base
from bot.subscription_service import nik_seal_context, subscription_seal_context

log = logging.getLogger(__name__)

# Running processes see a new current key within RELOAD_INTERVAL_S; the margin covers a
# unit of work that sealed a value just before that and commits a little later.
SETTLE_S = RELOAD_INTERVAL_S + 4.0
BATCH_SIZE = 500
# A pass that had to leave a row alone (a writer changed it meanwhile) is followed by
# another, so no value under an old key slips through before the old keys are retired.
MAX_PASSES = 3


class RotationBusy(RuntimeError):
    """Another `keys rotate` holds the key file."""


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """A column of sealed values and how its writer computes the AEAD context from the row.
    `context` None: a sealed column rotation does not know; its values are only counted."""

    table: str
    column: str
    reads: tuple[str, ...]
    context: Callable[[RowMapping], str] | None


def _by_address(context: Callable[[str, str], str]) -> Callable[[RowMapping], str]:
    return lambda row: context(row["channel"], row["address_hash"])


def _by_id(context: Callable[[str], str]) -> Callable[[RowMapping], str]:
    return lambda row: context(row["id"])


def _conversation_context(row: RowMapping) -> str:
    return conversation_seal_context(row["channel"], row["address_hash"])


def _last_reply_context(row: RowMapping) -> str:
    return last_reply_seal_context(row["channel"], row["address_hash"])


def _household_context(row: RowMapping) -> str:
    return household_seal_context(row["facilitator_id"], row["nik_hash"])


ADDRESS = ("channel", "address_hash")
SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("conversations", "sealed_data", ADDRESS, _conversation_context),
    SealedColumn("conversations", "sealed_last_reply", ADDRESS, _last_reply_context),
    SealedColumn("filings", "sealed_document", (), _by_id(filing_seal_context)),
    SealedColumn("filings", "sealed_filer_address", (), _by_id(filer_seal_context)),
    SealedColumn(
        "outbound_messages", "sealed_address", ADDRESS, _by_address(outbound_seal_context)
    ),
    SealedColumn(
        "subscriptions", "sealed_address", ADDRESS, _by_address(subscription_seal_context)
    ),
    SealedColumn("subscriptions", "sealed_nik", ADDRESS, _by_address(nik_seal_context)),
    SealedColumn("facilitators", "sealed_name", (), _by_id(name_seal_context)),
    SealedColumn("facilitators", "sealed_phone", (), _by_id(phone_seal_context)),
    SealedColumn("facilitator_households", "sealed_nik", (), _household_context),
)


def sealed_columns() -> list[SealedColumn]:
    """SEALED_COLUMNS, plus every other `sealed_*` column of the schema with no context:
    a column added without telling rotation must hold back retirement, not lose data."""
    known = {(c.table, c.column) for c in SEALED_COLUMNS}
    unknown = [
        SealedColumn(table.name, column.name, (), None)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.name.startswith("sealed_") and (table.name, column.name) not in known
    ]
    return [*SEALED_COLUMNS, *unknown]


@dataclass(slots=True)
class TableFigures:
    resealed: int = 0
    unreadable: int = 0  # under another key and does not open: blocks retirement
    unknown_column: int = 0  # under an old key in a column without a known context
    changed_meanwhile: int = 0  # a writer replaced the value between read and update

    @property
    def holds_old_keys(self) -> bool:
        return bool(self.unreadable or self.unknown_column)


@dataclass(frozen=True, slots=True)
class RotationReport:
    current: int
    created: bool
    tables: Mapping[str, TableFigures]
    retired: tuple[int, ...]  # ids retired by this run; empty if old values remain
    kept: tuple[int, ...]  # old ids still usable because some values could not move

    def lines(self) -> list[str]:
        lines = [f"{table}: {_describe(figures)}" for table, figures in self.tables.items()]
        made = "new key" if self.created else "key"
        if self.kept:
            ids = ", ".join(map(str, self.kept))
            lines.append(
                f"bansos-bot: {made} {self.current} seals new values; key(s) {ids} kept, "
                "as some values did not move (see above); run `keys rotate` again once "
                "they are dealt with"
            )
        else:
            retired = ", ".join(map(str, self.retired)) or "none"
            lines.append(
                f"bansos-bot: every sealed value is under {made} {self.current}; "
                f"retired key(s): {retired}"
            )
        return lines


def _describe(figures: TableFigures) -> str:
    parts = [f"{figures.resealed} re-sealed"]
    if figures.unreadable:
        parts.append(f"{figures.unreadable} did not open")
    if figures.unknown_column:
        parts.append(f"{figures.unknown_column} left under old keys (column unknown to rotation)")
    return ", ".join(parts)


async def rotate(
    database: Database,
    keys: KeyRing,
    *,
    settle_s: float = SETTLE_S,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[str, int], None] | None = None,
) -> RotationReport:
    """Make a new sealing key current (unless a rotation is under way), re-seal every
    value under an older key, then retire the older keys. `on_batch(table, resealed)` is
    called after each committed batch."""
    if keys.keys_file is None:
        raise ValueError("rotation needs a KeyRing loaded from a key file (KeyRing.load)")
    path = keys.keys_file
    with _rotation_lock(path):
        state = read_keys(path)
        created = not state.rotating
        if created:
            state = state.with_new_key()
            write_keys(path, state)
            log.info("sealing key %d created and made current", state.current)
        keys.reload()
        if keys.current_key_id != state.current:
            raise RuntimeError("the key ring does not follow the key file it was loaded from")
        # Until every running process seals with the new key, an old-key value may still
        # be written behind the walk; waited even when carrying on, since the previous
        # run may have been stopped during this very wait.
        await asyncio.sleep(settle_s)
        tables = await _reseal_everything(database, keys, batch_size, on_batch)
        return _finish(path, keys, state, created, tables)


async def _reseal_everything(
    database: Database,
    keys: KeyRing,
    batch_size: int,
    on_batch: Callable[[str, int], None] | None,
) -> dict[str, TableFigures]:
    columns = sealed_columns()
    totals = {column.table: TableFigures() for column in columns}
    for _ in range(MAX_PASSES):
        this_pass = {column.table: TableFigures() for column in columns}
        for column in columns:
            await _reseal_column(
                database, keys, column, this_pass[column.table], batch_size, on_batch
            )
        for table, figures in this_pass.items():
            totals[table].resealed += figures.resealed
            # What stays in the way of retirement is what the last pass found.
            totals[table].unreadable = figures.unreadable
            totals[table].unknown_column = figures.unknown_column
            totals[table].changed_meanwhile = figures.changed_meanwhile
        if not any(figures.changed_meanwhile for figures in this_pass.values()):
            break
    return totals


async def _reseal_column(
    database: Database,
    keys: KeyRing,
    sealed: SealedColumn,
    figures: TableFigures,
    batch_size: int,
    on_batch: Callable[[str, int], None] | None,
) -> None:
    table = Base.metadata.tables[sealed.table]
    primary = list(table.primary_key.columns)
    value = table.c[sealed.column]
    wanted = [*primary, *(table.c[name] for name in sealed.reads if name not in primary)]
    after: Sequence[Any] | None = None
    while True:
        query = select(*wanted, value).where(value.is_not(None)).order_by(*primary)
        if after is not None:
            query = query.where(tuple_(*primary) > tuple_(*after))
        async with database.transaction() as session:
            rows = (await session.execute(query.limit(batch_size))).mappings().all()
            resealed = 0
            for row in rows:
                resealed += await _reseal_row(session, keys, sealed, row, figures)
        figures.resealed += resealed
        if on_batch is not None:
            on_batch(sealed.table, resealed)
        if len(rows) < batch_size:
            return
        after = [rows[-1][column.name] for column in primary]


async def _reseal_row(
    session: AsyncSession,
    keys: KeyRing,
    sealed: SealedColumn,
    row: RowMapping,
    figures: TableFigures,
) -> int:
    old: bytes = row[sealed.column]
    if old[:1] == bytes([keys.current_key_id]):
        return 0
    if sealed.context is None:
        figures.unknown_column += 1
        return 0
    table = Base.metadata.tables[sealed.table]
    where = [column == row[column.name] for column in table.primary_key.columns]
    context = sealed.context(row)
    try:
        new = keys.seal(keys.unseal(old, context=context), context=context)
    except SealBroken:
        figures.unreadable += 1
        log.warning(
            "%s.%s of row %s does not open; it keeps its old key",
            sealed.table,
            sealed.column,
            [row[column.name] for column in table.primary_key.columns],
        )
        return 0
    # Guarded by the old value: a writer that changed the row meanwhile sealed it with the
    # current key already, and its change must not be overwritten.
    statement = (
        update(table)
        .where(and_(*where), table.c[sealed.column] == old)
        .values({sealed.column: new})
    )
    result = cast(CursorResult[Any], await session.execute(statement))
    if result.rowcount == 0:
        figures.changed_meanwhile += 1
        return 0
    return 1


def _finish(
    path: Path,
    keys: KeyRing,
    state: SealingKeys,
    created: bool,
    tables: dict[str, TableFigures],
) -> RotationReport:
    old = tuple(sorted(state.usable_ids - {state.current}))
    if any(figures.holds_old_keys or figures.changed_meanwhile for figures in tables.values()):
        return RotationReport(state.current, created, tables, retired=(), kept=old)
    if old:
        write_keys(path, state.retiring_old())
        keys.reload()
        log.info("sealing key(s) %s retired", ", ".join(map(str, old)))
    return RotationReport(state.current, created, tables, retired=old, kept=())


@contextmanager
def _rotation_lock(path: Path) -> Iterator[None]:
    """One rotation at a time: two would each make a different key under the same id.
    flock is released by the kernel if the process dies, so a killed run leaves no lock."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationBusy(f"another `keys rotate` is using {path}") from None
        yield
    finally:
        os.close(descriptor)
