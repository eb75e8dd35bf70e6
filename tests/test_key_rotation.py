"""Sealing keys with ids, and `bansos-bot keys rotate`: every sealed value moves to a new
key, old keys are retired, keyed hashes never change, and a killed run can be resumed."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import key_rotation
from bot.cli import main
from bot.crypto import KeyRing, SealBroken
from bot.dialog_engine import DialogEngine
from bot.filer_messages import outbound_seal_context, tell_filer
from bot.filing_service import FilingService, filer_seal_context, filing_seal_context
from bot.filings import AreaRule
from bot.key_rotation import RotationBusy, rotate
from bot.key_store import KeyFileBroken, read_keys
from bot.storage.database import Database, open_database
from bot.storage.migrate import upgrade_to_head
from bot.storage.models import Conversation, Filing, OutboundMessage, Subscription
from bot.subscription_service import (
    SubscriptionService,
    nik_seal_context,
    subscription_seal_context,
)
from tests.conftest import TEST_SECRET_KEY
from tests.filing_factory import filer, objection

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NIKS = ("3302015708890003", "3302016112910004", "3174094101850007")

# Made by the code before key ids existed: what is already stored must keep opening.
GOLDEN_SECRET = "golden-secret-0123456789abcdefghijklmnopqrstuvwxyz"
GOLDEN_NIK_HASH = "c5e7ce05ee1f732284a4f53fa3b29a5c25c289517d237761a64d7c5236c132bd"
GOLDEN_ADDRESS_HASH = "e85b03f7b05e8c2aa27229930ca5bf4a8a5ff79a0dfcb1f41b0b5923e530399c"
GOLDEN_SEALED_NIK = bytes.fromhex(
    "0150e0e75cca9c372a3734e13499d56b39715bed04cda3424b3c8c50763b8ce769aaabe8a900b1269ad95ddaf3"
)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "var" / "sealing-keys.json"


def ring(keys_file: Path, *, reload_interval_s: float = 0.0) -> KeyRing:
    return KeyRing.load(TEST_SECRET_KEY, keys_file, reload_interval_s=reload_interval_s)


def conversation_context(channel: str, address_hash: str) -> str:
    return DialogEngine._seal_context(Conversation(channel=channel, address_hash=address_hash))


def last_reply_context(channel: str, address_hash: str) -> str:
    return DialogEngine._reply_context(Conversation(channel=channel, address_hash=address_hash))


async def seed(database: Database, keys: KeyRing, people: int = 3) -> None:
    """Every sealed column filled, each by its own writer."""
    filings = FilingService(keys, filings_per_day=10, area_rule=AreaRule.OFF, clock=lambda: NOW)
    subscriptions = SubscriptionService(keys, per_address=5, clock=lambda: NOW)
    for number, nik in enumerate(NIKS[:people]):
        who, _address = filer(number)
        async with database.transaction() as session:
            await filings.submit(session, who, objection(nik))
            await subscriptions.subscribe(session, who, nik)
            context = conversation_context(who.channel, who.address_hash)
            reply_context = last_reply_context(who.channel, who.address_hash)
            session.add(
                Conversation(
                    channel=who.channel,
                    address_hash=who.address_hash,
                    language="id",
                    consent_version="v1",
                    consented_at=NOW,
                    step="status_nik",
                    sealed_data=keys.seal(f'{{"nik": "{nik}"}}'.encode(), context=context),
                    sealed_last_reply=keys.seal(b'{"text": "..."}', context=reply_context),
                    updated_at=NOW,
                    step_expires_at=NOW,
                )
            )
        async with database.transaction() as session:
            filing = (
                await session.scalars(select(Filing).where(Filing.filer_hash == who.address_hash))
            ).one()
            tell_filer(keys, session, filing, NOW)


async def sealed_values(database: Database) -> dict[tuple[str, str], bytes]:
    """Every sealed value, by (column, its AEAD context as the writer computed it)."""
    values: dict[tuple[str, str], bytes] = {}
    async with database.transaction() as session:
        for c in (await session.scalars(select(Conversation))).all():
            assert c.sealed_data is not None and c.sealed_last_reply is not None
            values["conversation", conversation_context(c.channel, c.address_hash)] = c.sealed_data
            values["reply", last_reply_context(c.channel, c.address_hash)] = c.sealed_last_reply
        for f in (await session.scalars(select(Filing))).all():
            values["document", filing_seal_context(f.id)] = f.sealed_document
            values["filer", filer_seal_context(f.id)] = f.sealed_filer_address
        for o in (await session.scalars(select(OutboundMessage))).all():
            values["outbound", outbound_seal_context(o.channel, o.address_hash)] = o.sealed_address
        for s in (await session.scalars(select(Subscription))).all():
            address, nik = (s.channel, s.address_hash), nik_seal_context(s.channel, s.address_hash)
            values["sub-address", subscription_seal_context(*address)] = s.sealed_address
            values["sub-nik", nik] = s.sealed_nik
    return values


def opened(keys: KeyRing, values: dict[tuple[str, str], bytes]) -> dict[tuple[str, str], bytes]:
    return {where: keys.unseal(sealed, context=where[1]) for where, sealed in values.items()}


def key_ids(values: dict[tuple[str, str], bytes]) -> set[int]:
    return {sealed[0] for sealed in values.values()}


async def test_rotation_reseals_every_value_under_a_new_key(
    database: Database, keys_file: Path
) -> None:
    keys = ring(keys_file)
    await seed(database, keys)
    before = await sealed_values(database)
    assert key_ids(before) == {1} and len(before) == 7 * 3
    plain = opened(keys, before)

    report = await rotate(database, keys, settle_s=0)

    after = await sealed_values(database)
    assert key_ids(after) == {2}
    assert opened(keys, after) == plain
    assert opened(ring(keys_file), after) == plain  # a process started afterwards reads them too
    assert (report.current, report.created, report.retired, report.kept) == (2, True, (1,), ())
    assert {table: f.resealed for table, f in report.tables.items()} == {
        "conversations": 6,
        "filings": 6,
        "outbound_messages": 3,
        "subscriptions": 6,
        "facilitators": 0,
        "facilitator_households": 0,
    }
    assert report.lines()[-1] == (
        "bansos-bot: every sealed value is under new key 2; retired key(s): 1"
    )
    on_file = read_keys(keys_file)
    assert (on_file.current, set(on_file.stored), on_file.retired) == (2, {2}, frozenset({1}))


async def test_a_second_rotation_drops_the_previous_random_key(
    database: Database, keys_file: Path
) -> None:
    keys = ring(keys_file)
    await seed(database, keys, people=1)
    await rotate(database, keys, settle_s=0)
    plain = opened(keys, await sealed_values(database))

    report = await rotate(database, keys, settle_s=0)

    after = await sealed_values(database)
    assert key_ids(after) == {3} and opened(keys, after) == plain
    assert report.retired == (2,)
    on_file = read_keys(keys_file)
    assert (on_file.current, set(on_file.stored), on_file.retired) == (3, {3}, frozenset({1, 2}))


async def test_values_under_a_retired_key_no_longer_open(
    database: Database, keys_file: Path
) -> None:
    keys = ring(keys_file)
    await seed(database, keys, people=1)
    stale_copy = await sealed_values(database)  # as a database backup taken before

    await rotate(database, keys, settle_s=0)

    for where, sealed in stale_copy.items():
        with pytest.raises(SealBroken):
            keys.unseal(sealed, context=where[1])
    # Nor does BOT_SECRET_KEY alone open anything now: key 2 lives only in the key file.
    secret_only = KeyRing.from_secret(TEST_SECRET_KEY)
    for where, sealed in (await sealed_values(database)).items():
        with pytest.raises(SealBroken):
            secret_only.unseal(sealed, context=where[1])


async def test_a_killed_rotation_carries_on_without_a_third_key(
    database: Database, keys_file: Path
) -> None:
    keys = ring(keys_file)
    await seed(database, keys)
    plain = opened(keys, await sealed_values(database))

    def killed_after_first_batch(_table: str, resealed: int) -> None:
        if resealed:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await rotate(database, keys, settle_s=0, batch_size=1, on_batch=killed_after_first_batch)

    halfway = await sealed_values(database)
    assert key_ids(halfway) == {1, 2}  # one batch committed, the rest still under key 1
    assert opened(ring(keys_file), halfway) == plain  # both keys open in the meantime
    assert read_keys(keys_file).usable_ids == {1, 2}

    report = await rotate(database, ring(keys_file), settle_s=0, batch_size=1)

    after = await sealed_values(database)
    assert key_ids(after) == {2} and opened(keys, after) == plain
    assert (report.current, report.created, report.retired) == (2, False, (1,))
    assert sum(f.resealed for f in report.tables.values()) == len(after) - 1
    assert read_keys(keys_file).stored.keys() == {2}


async def test_a_sealed_column_rotation_does_not_know_holds_back_retirement(
    database: Database, keys_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ring(keys_file)
    await seed(database, keys, people=1)
    without_nik = tuple(c for c in key_rotation.SEALED_COLUMNS if c.column != "sealed_nik")
    monkeypatch.setattr(key_rotation, "SEALED_COLUMNS", without_nik)

    report = await rotate(database, keys, settle_s=0)

    assert (report.retired, report.kept) == ((), (1,))
    assert report.tables["subscriptions"].unknown_column == 1
    assert "subscriptions: 1 re-sealed, 1 left under old keys" in report.lines()[3]
    assert read_keys(keys_file).usable_ids == {1, 2}
    monkeypatch.undo()
    report = await rotate(database, keys, settle_s=0)
    assert (report.created, report.retired) == (False, (1,))
    assert key_ids(await sealed_values(database)) == {2}


async def test_a_value_that_does_not_open_keeps_the_old_key(
    database: Database, keys_file: Path
) -> None:
    keys = ring(keys_file)
    await seed(database, keys, people=1)
    async with database.transaction() as session:
        subscription = (await session.scalars(select(Subscription))).one()
        subscription.sealed_nik = subscription.sealed_nik[:-1] + b"\x00"

    report = await rotate(database, keys, settle_s=0)

    assert report.tables["subscriptions"].unreadable == 1 and report.kept == (1,)
    assert report.lines()[-1].startswith("bansos-bot: new key 2 seals new values; key(s) 1 kept")


async def test_a_running_key_ring_takes_the_new_key(database: Database, keys_file: Path) -> None:
    checks_now = ring(keys_file, reload_interval_s=0)
    checks_hourly = ring(keys_file, reload_interval_s=3600)
    assert checks_now.seal(b"x", context="c")[0] == 1
    await seed(database, checks_now, people=1)

    await rotate(database, ring(keys_file), settle_s=0)

    assert checks_now.seal(b"x", context="c")[0] == 2
    # Between two looks at the file the ring seals with what it knew…
    assert checks_hourly.seal(b"x", context="c")[0] == 1
    # …but a value under a key it has not seen makes it look at once.
    sealed = checks_now.seal(b"new", context="c")
    assert checks_hourly.unseal(sealed, context="c") == b"new"
    assert checks_hourly.seal(b"x", context="c")[0] == 2


def test_the_key_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    keys_file = tmp_path / "state" / "keys" / "sealing-keys.json"
    keys = ring(keys_file)
    assert not keys_file.exists() and keys.current_key_id == 1

    asyncio.run(_rotate_empty(keys, tmp_path / "bot.sqlite3"))

    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_file.parent.stat().st_mode) == 0o700
    document = json.loads(keys_file.read_text())
    assert document["current"] == 2 and document["retired"] == [1]
    assert set(document["keys"]) == {"2"}
    leftovers = {p.name for p in keys_file.parent.iterdir()}
    assert leftovers == {"sealing-keys.json", "sealing-keys.json.lock"}


async def _rotate_empty(keys: KeyRing, database_file: Path) -> None:
    # No table has a row: the key is made and the old one retired straight away.
    database = open_database(f"sqlite+aiosqlite:///{database_file}")
    try:
        await upgrade_to_head(database)
        await rotate(database, keys, settle_s=0)
    finally:
        await database.dispose()


def test_a_value_under_an_unknown_key_id_does_not_open(keys_file: Path) -> None:
    keys = ring(keys_file)
    sealed = keys.seal(b"data", context="row:1")
    for key_id in (0, 2, 7, 255):
        with pytest.raises(SealBroken):
            keys.unseal(bytes([key_id]) + sealed[1:], context="row:1")


def test_values_stored_before_key_ids_still_open_and_hashes_never_change(
    tmp_path: Path,
) -> None:
    keys_file = tmp_path / "sealing-keys.json"
    keys = KeyRing.load(GOLDEN_SECRET, keys_file)
    context = "subscription-nik:telegram:abc"
    assert keys.unseal(GOLDEN_SEALED_NIK, context=context) == b"3302015708890003"

    asyncio.run(_rotate_empty(keys, tmp_path / "bot.sqlite3"))

    assert keys.current_key_id == 2
    for hashed_by in (keys, KeyRing.from_secret(GOLDEN_SECRET)):
        assert hashed_by.nik_hash("3302015708890003") == GOLDEN_NIK_HASH
        assert hashed_by.nik_hasher()("3302015708890003") == GOLDEN_NIK_HASH
        assert hashed_by.address_hash("telegram", "123456") == GOLDEN_ADDRESS_HASH


def test_a_damaged_key_file_is_refused_at_start_and_ignored_while_running(
    keys_file: Path,
) -> None:
    keys_file.parent.mkdir(parents=True)
    keys_file.write_text('{"format": 1, "current": 3, "keys": {}, "retired": []}')
    with pytest.raises(KeyFileBroken):
        ring(keys_file)

    keys_file.unlink()
    running = ring(keys_file)
    keys_file.write_text("not json")
    assert running.seal(b"x", context="c")[0] == 1  # keeps the keys it has


async def test_two_rotations_at_once_are_refused(database: Database, keys_file: Path) -> None:
    keys_file.parent.mkdir(parents=True)
    lock = os.open(f"{keys_file}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(RotationBusy):
            await rotate(database, ring(keys_file), settle_s=0)
    finally:
        os.close(lock)
    assert read_keys(keys_file).current == 1  # no key was made


def test_keys_rotate_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith(("DATABASE_", "REGISTRY_", "TELEGRAM_", "SEALING_", "BOT_")):
            monkeypatch.delenv(name)
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("BOT_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("BOT_VAR_DIR", str(tmp_path / "var"))
    keys_file = tmp_path / "var" / "sealing-keys.json"
    assert main(["migrate"]) == 0
    asyncio.run(_seed_at(url, keys_file))
    capsys.readouterr()

    assert main(["keys", "rotate", "--settle", "0"]) == 0

    assert capsys.readouterr().out.splitlines() == [
        "conversations: 2 re-sealed",
        "filings: 2 re-sealed",
        "outbound_messages: 1 re-sealed",
        "subscriptions: 2 re-sealed",
        "facilitators: 0 re-sealed",
        "facilitator_households: 0 re-sealed",
        "bansos-bot: every sealed value is under new key 2; retired key(s): 1",
    ]
    assert main(["keys", "rotate", "--settle", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "bansos-bot: every sealed value is under new key 3; retired key(s): 2"
    )


async def _seed_at(url: str, keys_file: Path) -> None:
    database = open_database(url)
    try:
        await seed(database, ring(keys_file), people=1)
    finally:
        await database.dispose()


def test_keys_rotate_refuses_a_database_not_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
    monkeypatch.setenv("BOT_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("BOT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("SEALING_KEYS_FILE", raising=False)

    assert main(["keys", "rotate", "--settle", "0"]) == 2

    assert "run `bansos-bot migrate`" in capsys.readouterr().err
    assert not (tmp_path / "var" / "sealing-keys.json").exists()


def test_every_sealed_column_of_the_schema_has_a_rotation_rule() -> None:
    # A sealed_* column added without one would hold back every rotation's retirement.
    unknown = [(c.table, c.column) for c in key_rotation.sealed_columns() if c.context is None]
    assert unknown == []
