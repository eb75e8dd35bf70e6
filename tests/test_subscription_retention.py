"""A stopped subscription (the person's /berhenti, or one retired by the service) is
deleted with its notices a quarter and a margin later, on SQLite and PostgreSQL; until
then, subscribing again takes up the same row. Active subscriptions are never touched."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.crypto import KeyRing
from bot.filings import Filer
from bot.housekeeping import STOPPED_SUBSCRIPTION_MEMORY, sweep
from bot.notice_run import change_json
from bot.storage.database import Database
from bot.storage.models import Notice, Subscription
from bot.storage.notice_repository import NoticeRepository
from bot.subscription_service import SubscriptionService
from bot.subscriptions import Subscribed, Unsubscribed
from registry_client.models import HouseholdState, StatusChange
from tests.conftest import TEST_SECRET_KEY
from tests.test_facilitators import Clock

NIK_STOPPED, NIK_KEPT, NIK_AGAIN = "3302015708890003", "3302016112910004", "3302011203850005"


async def rows(database: Database) -> tuple[dict[str, str], int]:
    """NIK hash → state of every subscription, and the number of notices."""
    async with database.transaction() as session:
        query = select(Subscription.nik_hash, Subscription.state)
        states = {nik_hash: state for nik_hash, state in (await session.execute(query)).all()}
        notices = (await session.execute(select(func.count()).select_from(Notice))).scalar_one()
    return states, notices


async def test_stopped_subscriptions_and_their_notices_go_a_quarter_later(
    database: Database,
) -> None:
    keys = KeyRing.from_secret(TEST_SECRET_KEY)
    clock = Clock()
    service = SubscriptionService(keys, per_address=5, clock=clock)
    address = "7300"
    me = Filer("telegram", address, keys.address_hash("telegram", address))
    async with database.transaction() as session:
        for nik in (NIK_STOPPED, NIK_KEPT, NIK_AGAIN):
            assert await service.subscribe(session, me, nik) == Subscribed(already=False)
        change = change_json(
            StatusChange(NIK_STOPPED, HouseholdState(3, ("PKH",)), HouseholdState(5, ()), None)
        )
        page = [(keys.nik_hash(nik), change) for nik in (NIK_STOPPED, NIK_KEPT, NIK_AGAIN)]
        assert await NoticeRepository(session).ingest_page("2026Q4", page) == 3
    async with database.transaction() as session:
        by_nik = {row.nik_hash: row.id for row in (await session.scalars(select(Subscription)))}
        for nik in (NIK_STOPPED, NIK_AGAIN):
            stopped = await service.unsubscribe(session, me, by_nik[keys.nik_hash(nik)])
            assert stopped == Unsubscribed(True)
    stopped_at = clock.now
    clock.now += timedelta(days=30)
    async with database.transaction() as session:  # back within the quarter: the same row
        assert await service.subscribe(session, me, NIK_AGAIN) == Subscribed(already=False)
    before = await rows(database)

    assert (await sweep(database, stopped_at + timedelta(days=99))).stopped_subscriptions == 0
    assert await rows(database) == before

    swept = await sweep(database, stopped_at + STOPPED_SUBSCRIPTION_MEMORY + timedelta(hours=1))
    assert swept.stopped_subscriptions == 1
    states, notices = await rows(database)
    assert states == {keys.nik_hash(NIK_KEPT): "active", keys.nik_hash(NIK_AGAIN): "active"}
    assert notices == 2  # the stopped one's notice went with it
    again = await sweep(database, stopped_at + timedelta(days=400))
    assert again.stopped_subscriptions == 0 and await rows(database) == (states, notices)
