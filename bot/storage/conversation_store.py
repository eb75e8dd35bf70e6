"""The conversation row on the hot path, in SQLAlchemy Core: load-or-create in one
statement, save in one, and the guarded save that resumes a step after a slow effect.

Every USSD request and Telegram update goes through here, so it skips the ORM's unit of
work: a plain row in, a plain UPDATE out. On PostgreSQL the same statements go straight
through asyncpg (bot/storage/driver_sql.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.storage.database import Unit
from bot.storage.driver_sql import DriverStatement
from bot.storage.models import Conversation, FacilitatorAccount, OutboundMessage

_TABLE: Table = Conversation.__table__  # type: ignore[assignment]
_KEY = ("channel", "address_hash")


@dataclass(slots=True)
class ConversationRow:
    channel: str
    address_hash: str
    language: str
    consent_version: str | None
    consented_at: datetime | None
    step: str
    sealed_data: bytes | None
    updated_at: datetime
    step_expires_at: datetime
    turn_session: str | None
    turn_count: int
    sealed_last_reply: bytes | None
    recent_messages: str | None

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __repr__(self) -> str:
        return f"ConversationRow(channel={self.channel!r}, step={self.step!r})"


_COLUMNS = [_TABLE.c[f.name] for f in fields(ConversationRow)]
_VALUE_COLUMNS = [c for c in _COLUMNS if c.key not in _KEY]


def _param(column: Any) -> Any:
    return bindparam(column.key, type_=column.type)


def _where_key() -> Any:
    return and_(
        _TABLE.c.channel == bindparam("key_channel", type_=_TABLE.c.channel.type),
        _TABLE.c.address_hash == bindparam("key_address", type_=_TABLE.c.address_hash.type),
    )


def _held_exists() -> Any:
    messages = OutboundMessage.__table__
    return (
        exists()
        .where(
            messages.c.channel == bindparam("key_channel", type_=messages.c.channel.type),
            messages.c.address_hash == bindparam("key_address", type_=messages.c.address_hash.type),
            messages.c.state == "held",
        )
        .label("held_mail")
    )


def _facilitator_linked() -> Any:
    """The active facilitator this chat speaks for, if any (at most one: activation
    refuses a chat already linked to another active facilitator)."""
    accounts = FacilitatorAccount.__table__
    return (
        select(accounts.c.id)
        .where(
            accounts.c.chat_hash == bindparam("key_address", type_=accounts.c.chat_hash.type),
            accounts.c.active.is_(True),
        )
        .limit(1)
        .scalar_subquery()
        .label("facilitator_id")
    )


def _load_statement(insert: Any, *, held: bool, facilitator: bool) -> Any:
    upsert = insert(_TABLE).values({c.key: _param(c) for c in _COLUMNS})
    returned = [
        *_COLUMNS,
        *([_held_exists()] if held else []),
        *([_facilitator_linked()] if facilitator else []),
    ]
    return upsert.on_conflict_do_update(
        index_elements=list(_KEY), set_={"updated_at": _TABLE.c.updated_at}
    ).returning(*returned)


# Built once: constructing a statement costs more CPU than sending it.
_LOAD = {
    (dialect, held, facilitator): _load_statement(insert, held=held, facilitator=facilitator)
    for dialect, insert in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
    for held in (False, True)
    for facilitator in (False, True)
}
_SAVE = update(_TABLE).where(_where_key()).values({c.key: _param(c) for c in _VALUE_COLUMNS})
_SAVE_IF_AT = (
    update(_TABLE)
    .where(
        _where_key(),
        _TABLE.c.step == bindparam("expected_step", type_=_TABLE.c.step.type),
        _TABLE.c.step_expires_at > bindparam("now", type_=_TABLE.c.step_expires_at.type),
    )
    .values({c.key: _param(c) for c in _VALUE_COLUMNS})
    .returning(_TABLE.c.step)
)
_SELECT = select(*_COLUMNS).where(_where_key())
_DELETE = delete(_TABLE).where(_where_key())
_ON_DRIVER_LOAD = {
    (held, facilitator): DriverStatement.of(_LOAD["postgresql", held, facilitator])
    for held in (False, True)
    for facilitator in (False, True)
}
_ON_DRIVER = {
    "save": DriverStatement.of(_SAVE),
    "save_if_at": DriverStatement.of(_SAVE_IF_AT),
    "select": DriverStatement.of(_SELECT),
}


def _key(channel: str, address_hash: str) -> dict[str, Any]:
    return {"key_channel": channel, "key_address": address_hash}


@dataclass(frozen=True, slots=True)
class Loaded:
    row: ConversationRow
    held_mail: bool  # messages wait for this address (asked only with `held_mail`)
    facilitator_id: str | None  # the active facilitator this chat speaks for


async def load_or_create(
    unit: Unit, blank: ConversationRow, *, held_mail: bool = False, facilitator: bool = False
) -> Loaded:
    """The row (locked until the transaction ends), made from `blank` if new; whether
    held messages wait for this address (asked only with `held_mail`); and the active
    facilitator linked to it (asked only with `facilitator`).

    One statement: the upsert's DO UPDATE takes the row lock as SELECT … FOR UPDATE would,
    so two instances serving the same chat serialise here. The questions ride along in
    its RETURNING, so they cost no round trip.
    """
    params = {**blank.values(), **_key(blank.channel, blank.address_hash)}
    driver = unit.driver
    if driver is not None:
        record = await driver.fetchrow(_ON_DRIVER_LOAD[held_mail, facilitator], params)
        assert record is not None  # an upsert with RETURNING always returns the row
        return _loaded(tuple(record), held_mail, facilitator)
    result = (await unit.execute(_LOAD[unit.dialect_name, held_mail, facilitator], params)).one()
    return _loaded(tuple(result), held_mail, facilitator)


def _loaded(record: tuple[Any, ...], held_mail: bool, facilitator: bool) -> Loaded:
    width = len(_COLUMNS)
    extra = record[width:]
    held = bool(extra[0]) if held_mail else False
    linked = extra[-1] if facilitator else None
    return Loaded(ConversationRow(*record[:width]), held, linked)


async def save(unit: Unit, row: ConversationRow) -> None:
    params = {**row.values(), **_key(row.channel, row.address_hash)}
    driver = unit.driver
    if driver is not None:
        await driver.execute(_ON_DRIVER["save"], params)
        return
    await unit.execute(_SAVE, params)


async def save_if_at(unit: Unit, row: ConversationRow, *, step: str, now: datetime) -> bool:
    """Save only if the stored row is still at `step` and not expired: the guarded write
    that resumes a step after a slow effect, in one statement. False: it moved on."""
    params = {
        **row.values(),
        **_key(row.channel, row.address_hash),
        "expected_step": step,
        "now": now,
    }
    driver = unit.driver
    if driver is not None:
        return await driver.fetchrow(_ON_DRIVER["save_if_at"], params) is not None
    return (await unit.execute(_SAVE_IF_AT, params)).first() is not None


async def load(unit: Unit, channel: str, address_hash: str) -> ConversationRow | None:
    if unit.driver is not None:
        record = await unit.driver.fetchrow(_ON_DRIVER["select"], _key(channel, address_hash))
        return None if record is None else ConversationRow(*record)
    found = (await unit.execute(_SELECT, _key(channel, address_hash))).first()
    return None if found is None else ConversationRow(*found)


async def forget(unit: Unit, channel: str, address_hash: str) -> None:
    await unit.execute(_DELETE, _key(channel, address_hash))
