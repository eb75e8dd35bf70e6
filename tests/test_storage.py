"""Storage on SQLite and PostgreSQL: migrations, conversation rows, sealing, rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from bot.admission import nik_counter
from bot.app import Services
from bot.crypto import KeyRing
from bot.dialog_engine import DialogEngine
from bot.dialogs.model import Input, InputKind
from bot.effects import EffectRunner
from bot.facilitator_service import FacilitatorService
from bot.filing_service import FilingService
from bot.filings import AreaRule
from bot.housekeeping import Swept, sweep
from bot.personal_data_service import PersonalDataService
from bot.photo_intake import PhotoIntake
from bot.photos import PhotoLimits
from bot.status_service import MATCH_MEMORY, StatusService
from bot.storage.admission_repository import AdmissionRepository
from bot.storage.database import Database, open_database
from bot.storage.migrate import is_at_head, upgrade_to_head
from bot.storage.models import Base, Conversation
from bot.storage.notice_repository import NoticeRunRepository
from bot.storage.outbound_repository import CursorRepository
from bot.subscription_service import SubscriptionService
from tests.conftest import TEST_SECRET_KEY

NIK = "3302015708890003"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_migrations_reach_head_and_are_idempotent(database_url: str) -> None:
    database = open_database(database_url)
    try:
        assert not await is_at_head(database)
        await upgrade_to_head(database)
        await upgrade_to_head(database)
        assert await is_at_head(database)
        assert await database.ping()
    finally:
        await database.dispose()


def engine_with_clock(services: Services, clock: Clock) -> DialogEngine:
    keys = KeyRing.from_secret(TEST_SECRET_KEY)
    status = StatusService(
        services.registry,
        services.database,
        keys,
        limits=services.settings.lookup_limits,
        clock=clock,
    )
    filings = FilingService(keys, filings_per_day=5, area_rule=AreaRule.KECAMATAN, clock=clock)
    subscriptions = SubscriptionService(keys, per_address=5, clock=clock)
    effects = EffectRunner(
        status,
        PhotoIntake(services.blobs, PhotoLimits()),
        filings,
        subscriptions,
        PersonalDataService(services.blobs, subscriptions),
        FacilitatorService(keys, clock=clock),
    )
    return DialogEngine(
        services.database, keys, effects, idle_timeout=timedelta(minutes=30), clock=clock
    )


async def conversation_rows(services: Services) -> list[Conversation]:
    async with services.database.transaction() as session:
        return list((await session.execute(select(Conversation))).scalars())


async def test_typed_nik_is_stored_sealed_and_address_hashed(services: Services) -> None:
    engine = engine_with_clock(services, Clock())
    for inp in [Input(InputKind.START), Input(InputKind.TEXT, "1"), Input(InputKind.TEXT, NIK)]:
        await engine.handle("telegram", "777001", inp)
    [row] = await conversation_rows(services)
    assert row.step == "status.name"
    assert row.address_hash != "777001" and len(row.address_hash) == 64
    assert row.sealed_data is not None and NIK.encode() not in row.sealed_data
    async with services.database.transaction() as session:
        dump = (await session.execute(text("SELECT * FROM conversations"))).all()
    assert NIK not in repr(dump) and "777001" not in repr(dump)


async def test_a_step_left_idle_expires_but_language_and_consent_stay(services: Services) -> None:
    clock = Clock()
    engine = engine_with_clock(services, clock)
    await engine.handle("ussd", "+62811", Input(InputKind.START))
    await engine.handle("ussd", "+62811", Input(InputKind.TEXT, "3"))
    await engine.handle("ussd", "+62811", Input(InputKind.TEXT, "2"))  # English
    await engine.handle("ussd", "+62811", Input(InputKind.TEXT, "1"))  # agree
    await engine.handle("ussd", "+62811", Input(InputKind.TEXT, NIK))
    clock.now += timedelta(minutes=31)
    reply = await engine.handle("ussd", "+62811", Input(InputKind.TEXT, "Siti Aminah"))
    [row] = await conversation_rows(services)
    assert row.step == "menu" and row.language == "en" and row.consent_version
    assert "Check aid status" in [choice.label for choice in reply.choices]


async def test_consent_time_is_recorded_and_withdrawal_deletes_the_row(
    services: Services,
) -> None:
    clock = Clock()
    engine = engine_with_clock(services, clock)
    await engine.handle("telegram", "1", Input(InputKind.START))
    await engine.handle("telegram", "1", Input(InputKind.CHOICE, "agree"))
    [row] = await conversation_rows(services)
    assert row.consented_at == clock.now
    await engine.handle("telegram", "1", Input(InputKind.COMMAND, "privasi"))
    await engine.handle("telegram", "1", Input(InputKind.CHOICE, "withdraw"))
    assert len(await conversation_rows(services)) == 1  # asked to confirm first
    await engine.handle("telegram", "1", Input(InputKind.CHOICE, "erase_yes"))
    assert await conversation_rows(services) == []  # consent, language, all gone
    await engine.handle("telegram", "1", Input(InputKind.TEXT, "3302015708890003"))
    [row] = await conversation_rows(services)
    assert row.consented_at is None and row.step == "consent"  # nothing is processed


async def test_concurrent_first_messages_from_one_chat_make_one_row(services: Services) -> None:
    engine = engine_with_clock(services, Clock())
    await asyncio.gather(
        *(engine.handle("telegram", "55", Input(InputKind.START)) for _ in range(8))
    )
    assert len(await conversation_rows(services)) == 1


async def test_a_message_delivered_twice_is_applied_once(services: Services) -> None:
    engine = engine_with_clock(services, Clock())
    steps = [(1, Input(InputKind.START)), (2, Input(InputKind.CHOICE, "agree"))]
    for message_id, inp in steps:
        await engine.handle("telegram", "8", inp, message_id=message_id)
    typed_nik = Input(InputKind.TEXT, NIK)
    asked_name = await engine.handle("telegram", "8", typed_nik, message_id=3)
    again = await engine.handle("telegram", "8", typed_nik, message_id=3)
    [row] = await conversation_rows(services)
    assert row.step == "status.name"  # not "that is not a name" at the name step
    assert again.text == asked_name.text  # the current question, asked again
    # The same digits typed anew (a new message) are applied: at the name step, refused.
    refused = await engine.handle("telegram", "8", typed_nik, message_id=4)
    assert refused.text != asked_name.text


async def test_messages_applied_out_of_order_are_each_applied(services: Services) -> None:
    """Two workers may take a chat's neighbouring messages in either order: the later
    one applied first does not make the earlier one look like a repeat."""
    engine = engine_with_clock(services, Clock())
    await engine.handle("telegram", "9", Input(InputKind.START), message_id=21)
    await engine.handle("telegram", "9", Input(InputKind.CHOICE, "agree"), message_id=23)
    await engine.handle("telegram", "9", Input(InputKind.TEXT, NIK), message_id=22)
    [row] = await conversation_rows(services)
    assert row.step == "status.name"
    assert row.recent_messages is not None and set(row.recent_messages.split()) == {
        "21",
        "22",
        "23",
    }


async def test_one_message_delivered_to_two_workers_at_once_is_applied_once(
    services: Services,
) -> None:
    engine = engine_with_clock(services, Clock())
    await engine.handle("telegram", "10", Input(InputKind.START), message_id=1)
    await engine.handle("telegram", "10", Input(InputKind.CHOICE, "agree"), message_id=2)
    await asyncio.gather(
        *(engine.handle("telegram", "10", Input(InputKind.TEXT, NIK), message_id=3) for _ in "ab")
    )
    [row] = await conversation_rows(services)
    assert row.step == "status.name" and row.recent_messages == "1 2 3"


async def test_many_chats_at_once_each_keep_their_own_state(services: Services) -> None:
    engine = engine_with_clock(services, Clock())
    chats = [str(n) for n in range(20)]
    await asyncio.gather(*(engine.handle("telegram", c, Input(InputKind.START)) for c in chats))
    await asyncio.gather(*(engine.handle("telegram", c, Input(InputKind.TEXT, "1")) for c in chats))
    rows = await conversation_rows(services)
    assert len(rows) == 20 and {row.step for row in rows} == {"status.nik"}


async def test_sqlite_file_is_created_under_its_folder(tmp_path: Path) -> None:
    database = open_database(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'bot.sqlite3'}")
    try:
        await upgrade_to_head(database)
        assert (tmp_path / "nested" / "bot.sqlite3").exists()
    finally:
        await database.dispose()


async def test_housekeeping_forgets_ended_windows_old_matches_and_unconsented_strangers(
    services: Services,
) -> None:
    clock = Clock()
    engine = engine_with_clock(services, clock)
    await engine.handle("telegram", "stranger", Input(InputKind.START))
    await engine.handle("telegram", "citizen", Input(InputKind.START))
    await engine.handle("telegram", "citizen", Input(InputKind.CHOICE, "agree"))
    unit = nik_counter(services.settings.lookup_limits, "a" * 64, clock.now)
    async with services.database.transaction() as session:
        admission = AdmissionRepository(session)
        assert await admission.take_all([unit]) == {(unit.scope, unit.key)}
        await admission.record_match("n" * 64, "a" * 64, clock.now)
    assert await sweep(services.database, clock.now) == Swept(0, 0, 0)
    swept = await sweep(services.database, clock.now + timedelta(days=2))
    assert swept == Swept(admission_counters=1, nik_matches=0, conversations=1)
    swept = await sweep(services.database, clock.now + MATCH_MEMORY + timedelta(days=1))
    assert swept == Swept(admission_counters=0, nik_matches=1, conversations=0)
    [row] = await conversation_rows(services)
    assert row.consent_version is not None  # the person who agreed keeps language and consent


async def test_models_and_migrations_describe_the_same_schema(database_url: str) -> None:
    database = open_database(database_url)
    try:
        await upgrade_to_head(database)
        async with database.engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await database.dispose()
    assert differences == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_connection_the_server_dropped_costs_no_request(
    services: Services, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No pre-ping: a pooled connection killed by the server fails one unit of work, which
    the engine runs again on a fresh connection."""
    engine = engine_with_clock(services, Clock())
    await engine.handle("telegram", "77", Input(InputKind.START))
    url = make_url(database_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database="postgres"
    )
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            url.database,
        )
    finally:
        await admin.close()
    assert killed >= 1
    reply = await engine.handle("telegram", "77", Input(InputKind.CHOICE, "agree"))
    assert reply.text  # answered, not an error
    assert "connection was dropped" in caplog.text  # it was the retry that answered
    [row] = await conversation_rows(services)
    assert row.consent_version is not None


async def lock_notice_run(session: AsyncSession, now: datetime) -> Any:
    return await NoticeRunRepository(session).lock("2026Q4", now)


async def lock_feed_cursor(session: AsyncSession, now: datetime) -> Any:
    return await CursorRepository(session).lock("tickets", now)


@pytest.mark.parametrize("lock", [lock_notice_run, lock_feed_cursor])
async def test_two_processes_making_one_row_at_once_share_it(
    database: Database, lock: Callable[[AsyncSession, datetime], Awaitable[Any]]
) -> None:
    """A notice run's row, or a feed's cursor, is made on first use. The first's new
    row is not yet committed when the second asks for it: the second waits for it
    instead of inserting its own and failing on the key."""
    now = datetime.now(UTC)
    first_holds_it = asyncio.Event()

    async def first() -> None:
        async with database.transaction() as session:
            row = await lock(session, now)
            row.updated_at = now + timedelta(minutes=5)
            first_holds_it.set()
            await asyncio.sleep(0.3)  # the second's request arrives meanwhile

    async def second() -> datetime:
        await first_holds_it.wait()
        async with database.transaction() as session:
            return cast(datetime, (await lock(session, now)).updated_at)

    _, seen = await asyncio.gather(first(), second())
    assert seen.replace(tzinfo=UTC) == now + timedelta(minutes=5)  # the first's, committed
