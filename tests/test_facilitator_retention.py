"""Retention of a deactivated PKH facilitator's data, on SQLite and PostgreSQL: once
FACILITATOR_RETENTION_DAYS have passed since the deactivation, their household list and
the subscriptions they held (notices included) are deleted. Their account, areas and
audit stay, so the audit still names who acted. An active facilitator's data, and
subscriptions people hold for themselves, are never touched."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.crypto import KeyRing
from bot.facilitator_cli import CSV_COLUMNS
from bot.facilitator_service import FacilitatorService
from bot.facilitators import Action, Facilitator, HouseholdOutcome
from bot.filings import Filer
from bot.housekeeping import FacilitatorRetention, Swept, sweep
from bot.notice_run import change_json
from bot.storage.database import Database, open_database
from bot.storage.models import (
    FacilitatorAccount,
    FacilitatorArea,
    FacilitatorAuditEntry,
    FacilitatorHousehold,
    Notice,
    Subscription,
)
from bot.storage.notice_repository import NoticeRepository, SubscriptionRepository
from bot.subscription_service import SubscriptionService
from bot.subscriptions import Subscribed
from registry_client.models import HouseholdState, StatusChange
from tests.conftest import TEST_SECRET_KEY
from tests.test_facilitators import NAME, Clock, bansos_bot

RETENTION = FacilitatorRetention(timedelta(days=90))
NIK_A, NIK_B, NIK_C = "3302015708890003", "3302016112910004", "3302011203850005"
PHONES = {"gone": "081234567890", "kept": "081299990000", "active": "081277770000"}
CHATS = {"gone": "7101", "kept": "7102", "active": "7103", "citizen": "7900"}
QUARTER = "2027Q1"


@pytest.fixture(autouse=True)
def nothing_personal_in_the_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    personal = (NAME, NIK_A, NIK_B, NIK_C, *PHONES.values())
    assert [value for value in personal if value in caplog.text] == []


@dataclass(frozen=True)
class World:
    """Three facilitators serving the same households: `gone` deactivated 91 days before
    `now`, `kept` 89 days before, `active` never; and a citizen following NIK_A."""

    ids: dict[str, str]
    now: datetime  # when the tests sweep


def chat(keys: KeyRing, who: str, facilitator_id: str | None = None) -> Filer:
    address = CHATS[who]
    address_hash = keys.address_hash("telegram", address)
    return Filer("telegram", address, address_hash, facilitator_id=facilitator_id)


async def enrol_linked(
    database: Database, facilitators: FacilitatorService, keys: KeyRing, who: str
) -> str:
    async with database.transaction() as session:
        enrolled, issued = await facilitators.enrol(session, NAME, PHONES[who], "330201")
    async with database.transaction() as session:
        linked = await facilitators.activate(session, issued.code, chat(keys, who).address_hash)
    assert isinstance(linked, Facilitator)
    return enrolled.id


async def seed(database: Database, keys: KeyRing) -> World:
    """Each facilitator lists NIK_A and NIK_B and subscribes them; `gone` also NIK_C,
    which its chat takes over for itself once deactivated. A quarter's notices are
    ingested for every subscription, then `gone` and `kept` are deactivated."""
    clock = Clock()
    facilitators = FacilitatorService(keys, clock=clock)
    subscriptions = SubscriptionService(keys, per_address=5, clock=clock)
    ids = {who: await enrol_linked(database, facilitators, keys, who) for who in PHONES}
    async with database.transaction() as session:
        for who, facilitator_id in ids.items():
            held = (NIK_A, NIK_B, NIK_C) if who == "gone" else (NIK_A, NIK_B)
            for nik in held:
                added = await facilitators.add_household(session, facilitator_id, nik)
                assert added is HouseholdOutcome.ADDED
                await facilitators.record(session, facilitator_id, Action.SUBSCRIPTION, nik)
                subscribed = await subscriptions.subscribe(
                    session, chat(keys, who, facilitator_id), nik
                )
                assert subscribed == Subscribed(already=False)
        own = await subscriptions.subscribe(session, chat(keys, "citizen"), NIK_A)
        assert own == Subscribed(already=False)
        change = change_json(
            StatusChange(NIK_A, HouseholdState(3, ("PKH",)), HouseholdState(5, ()), None)
        )
        pages = [(keys.nik_hash(nik), change) for nik in (NIK_A, NIK_B, NIK_C)]
        assert await NoticeRepository(session).ingest_page(QUARTER, pages) == 3 + 2 + 2 + 1
    deactivated_at = clock.now
    async with database.transaction() as session:
        assert await facilitators.deactivate(session, ids["gone"])
        clock.now += timedelta(days=2)
        assert await facilitators.deactivate(session, ids["kept"])
        # As the next quarterly run does: what deactivated facilitators hold is retired.
        await SubscriptionRepository(session).retire_of_inactive_facilitators(clock.now)
    async with database.transaction() as session:
        # The former facilitator's chat, now a citizen's, follows NIK_C for itself.
        taken_over = await subscriptions.subscribe(session, chat(keys, "gone"), NIK_C)
        assert taken_over == Subscribed(already=False)
    return World(ids, deactivated_at + timedelta(days=91))


Snapshot = dict[str, set[tuple[Any, ...]]]


async def snapshot(database: Database) -> Snapshot:
    """Every row the retention could touch, as comparable tuples."""
    queries = {
        "accounts": select(
            FacilitatorAccount.id,
            FacilitatorAccount.sealed_name,
            FacilitatorAccount.sealed_phone,
            FacilitatorAccount.active,
            FacilitatorAccount.deactivated_at,
        ),
        "areas": select(FacilitatorArea.facilitator_id, FacilitatorArea.kecamatan),
        "households": select(FacilitatorHousehold.facilitator_id, FacilitatorHousehold.nik_hash),
        "audit": select(
            FacilitatorAuditEntry.id,
            FacilitatorAuditEntry.facilitator_id,
            FacilitatorAuditEntry.action,
            FacilitatorAuditEntry.nik_hash,
        ),
        "subscriptions": select(
            Subscription.id,
            Subscription.facilitator_id,
            Subscription.address_hash,
            Subscription.nik_hash,
            Subscription.state,
        ),
        "notices": select(Notice.id, Notice.subscription_id),
    }
    async with database.transaction() as session:
        return {
            name: {tuple(row) for row in (await session.execute(query)).all()}
            for name, query in queries.items()
        }


def held_subscription_ids(rows: Snapshot, facilitator_id: str) -> set[int]:
    return {row[0] for row in rows["subscriptions"] if row[1] == facilitator_id}


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.from_secret(TEST_SECRET_KEY)


@pytest.fixture
async def world(database: Database, keys: KeyRing) -> World:
    return await seed(database, keys)


async def test_households_and_held_subscriptions_go_once_the_retention_has_passed(
    database: Database, keys: KeyRing, world: World
) -> None:
    gone = world.ids["gone"]
    before = await snapshot(database)
    held = held_subscription_ids(before, gone)
    assert len(held) == 2  # NIK_A and NIK_B; NIK_C was taken over by the chat itself
    assert {row[1] for row in before["notices"]} >= held

    swept = await sweep(database, world.now, facilitators=RETENTION)

    assert (swept.facilitator_households, swept.facilitator_subscriptions) == (3, 2)
    after = await snapshot(database)
    assert after["households"] == {row for row in before["households"] if row[0] != gone}
    assert after["subscriptions"] == {row for row in before["subscriptions"] if row[0] not in held}
    # Nothing deleted the notices but the foreign key's ON DELETE CASCADE.
    assert after["notices"] == {row for row in before["notices"] if row[1] not in held}
    assert len(after["notices"]) == 8 - 2
    # Who acted stays: the account (sealed name and phone), its areas, its audit.
    for kept in ("accounts", "areas", "audit"):
        assert after[kept] == before[kept]
    assert {row[2] for row in after["audit"] if row[1] == gone} >= {
        Action.ENROLMENT.value,
        Action.SUBSCRIPTION.value,
        Action.DEACTIVATION.value,
    }
    async with database.transaction() as session:
        account = await FacilitatorService(keys, clock=Clock()).get(session, gone)
    assert (account.name, account.active, account.areas) == (NAME, False, ("330201",))


async def test_within_the_retention_active_facilitators_and_citizens_keep_everything(
    database: Database, keys: KeyRing, world: World
) -> None:
    before = await snapshot(database)

    await sweep(database, world.now, facilitators=RETENTION)

    after = await snapshot(database)
    for who in ("kept", "active"):  # deactivated 89 days ago; never deactivated
        facilitator_id = world.ids[who]
        assert {r for r in after["households"] if r[0] == facilitator_id} == {
            (facilitator_id, keys.nik_hash(NIK_A)),
            (facilitator_id, keys.nik_hash(NIK_B)),
        }
        held = held_subscription_ids(before, facilitator_id)
        assert len(held) == 2 and held_subscription_ids(after, facilitator_id) == held
        assert {r for r in after["notices"] if r[1] in held} == {
            r for r in before["notices"] if r[1] in held
        }
    own = {r for r in before["subscriptions"] if r[1] is None}
    citizen, gone_chat = (chat(keys, who).address_hash for who in ("citizen", "gone"))
    assert {(r[2], r[3]) for r in own} == {
        (citizen, keys.nik_hash(NIK_A)),  # the same NIK the facilitators followed
        (gone_chat, keys.nik_hash(NIK_C)),  # taken over by the former facilitator's chat
    }
    assert own <= after["subscriptions"]
    own_ids = {r[0] for r in own}
    assert {r for r in after["notices"] if r[1] in own_ids} == {
        r for r in before["notices"] if r[1] in own_ids
    }

    # Two days later (90 days and a day after its deactivation), `kept` goes too.
    later = await sweep(database, world.now + timedelta(days=2), facilitators=RETENTION)
    assert (later.facilitator_households, later.facilitator_subscriptions) == (2, 2)
    last, active = await snapshot(database), world.ids["active"]
    assert {r for r in last["households"] if r[0] == active} == {
        r for r in before["households"] if r[0] == active
    }
    assert held_subscription_ids(last, active) == held_subscription_ids(before, active)
    assert own <= last["subscriptions"]


async def test_a_second_sweep_deletes_nothing_more(database: Database, world: World) -> None:
    first = await sweep(database, world.now, facilitators=RETENTION)
    swept_once = await snapshot(database)

    again = await sweep(database, world.now, facilitators=RETENTION)

    assert (first.facilitator_households, first.facilitator_subscriptions) == (3, 2)
    assert again == Swept(0, 0, 0)
    assert await snapshot(database) == swept_once


async def test_a_sweep_without_the_retention_keeps_facilitators_data(
    database: Database, world: World
) -> None:
    before = await snapshot(database)

    # When the retention would take `gone`'s data (and before the subscriptions it held,
    # retired at deactivation, are old enough to go as stopped ones).
    swept = await sweep(database, world.now)

    assert (swept.facilitator_households, swept.facilitator_subscriptions) == (0, 0)
    assert await snapshot(database) == before


# --- the command line --------------------------------------------------------------


async def _seeded(url: str) -> World:
    database = open_database(url)
    try:
        return await seed(database, KeyRing.from_secret(TEST_SECRET_KEY))
    finally:
        await database.dispose()


async def _swept(url: str, world: World) -> Swept:
    database = open_database(url)
    try:
        return await sweep(database, world.now, facilitators=RETENTION)
    finally:
        await database.dispose()


def test_the_household_list_of_a_swept_facilitator_is_empty_and_the_audit_names_them(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    world = asyncio.run(_seeded(cli_env))
    gone = world.ids["gone"]
    status, out, _ = bansos_bot(capsys, "households", "--id", gone, "--csv")
    assert status == 0 and len(out) == 1 + 3  # the hand-over export, before the sweep

    assert asyncio.run(_swept(cli_env, world)).facilitator_households == 3

    status, out, err = bansos_bot(capsys, "households", "--id", gone, "--csv")
    assert (status, out, err) == (0, [",".join(CSV_COLUMNS)], [])
    status, out, err = bansos_bot(capsys, "households", "--id", gone)
    assert (status, out, err) == (0, ["bansos-bot: no household on this list yet"], [])
    status, out, _ = bansos_bot(capsys, "list")
    assert status == 0 and any(line.startswith(f"{gone}  S*** A*****  ") for line in out)
    status, out, _ = bansos_bot(capsys, "audit", "--id", gone)
    assert status == 0
    assert [line.split()[3] for line in out] == [
        "enrolment",
        "activation",
        *["subscription"] * 3,
        "deactivation",
    ]
