"""Look-up limits: atomic admission per address, per NIK for failed names and for the
whole service, on SQLite and PostgreSQL, through the real sandbox registry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import text

from bot.admission import LookupLimits, window_start
from bot.app import Services
from bot.crypto import KeyRing
from bot.lookup import LookupFailure, LookupOutcome, Throttled, ThrottleReason
from bot.status_service import StatusService
from registry_client.models import StatusReport
from registry_client.sandbox import RunningSandbox
from tests.conftest import TEST_SECRET_KEY

LIMITS = LookupLimits(
    short_limit=3,
    short_window=timedelta(minutes=10),
    per_day=5,
    name_failures_per_nik=5,
    global_per_minute=1000,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 8, 3, tzinfo=UTC)  # 15:03 WIB

    def __call__(self) -> datetime:
        return self.now


def status_service(
    services: Services, clock: Clock, limits: LookupLimits = LIMITS
) -> StatusService:
    keys = KeyRing.from_secret(TEST_SECRET_KEY)
    return StatusService(services.registry, services.database, keys, limits=limits, clock=clock)


async def check(status: StatusService, address: str, nik: str, name: str) -> LookupOutcome:
    return await status.check(channel="ussd", address_hash=address, nik=nik, name=name)


async def set_down(sandbox: RunningSandbox, down: bool) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sandbox.url}/sandbox/faults", json={"down": down}) as response,
    ):
        assert response.status == 200


def test_windows_are_fixed_and_days_start_at_midnight_wib() -> None:
    moment = datetime(2026, 11, 28, 8, 3, 20, tzinfo=UTC)
    assert window_start(moment, timedelta(minutes=10)) == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    # Midnight in Jakarta is 17:00 UTC the day before.
    day = window_start(moment, timedelta(days=1), timedelta(hours=7))
    assert day == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    late = datetime(2026, 11, 28, 17, 30, tzinfo=UTC)  # 00:30 WIB on the 29th
    assert window_start(late, timedelta(days=1), timedelta(hours=7)) == late.replace(minute=0)


async def test_an_address_is_limited_per_window_and_told_when_to_come_back(
    services: Services, sandbox: RunningSandbox
) -> None:
    clock = Clock()
    status = status_service(services, clock)
    people = sandbox.population.sample(LIMITS.per_day + 1)
    outcomes = [await check(status, "phone-a", p.nik, p.name) for p in people[:4]]
    assert [type(o) for o in outcomes[:3]] == [StatusReport] * 3
    assert outcomes[3] == Throttled(ThrottleReason.ADDRESS, 7 * 60)  # the window ends at 08:10
    # Another address is not affected by this one's limit.
    assert isinstance(await check(status, "phone-b", people[3].nik, people[3].name), StatusReport)
    clock.now += timedelta(minutes=7)
    outcomes = [await check(status, "phone-a", p.nik, p.name) for p in people[3:6]]
    assert [type(o) for o in outcomes[:2]] == [StatusReport] * 2
    # Five a day: the sixth waits for midnight WIB (17:00 UTC), eight hours and 50 minutes.
    assert outcomes[2] == Throttled(ThrottleReason.ADDRESS, (8 * 60 + 50) * 60)


async def test_wrong_names_lock_the_nik_for_the_day_but_not_for_its_owner(
    services: Services, sandbox: RunningSandbox
) -> None:
    clock = Clock()
    status = status_service(services, clock)
    person = sandbox.population.sample(1)[0]
    assert isinstance(await check(status, "owner", person.nik, person.name), StatusReport)
    # Right names do not count towards the lock: a family checking often is no attack.
    for n in range(3):
        assert isinstance(await check(status, f"kin{n}", person.nik, person.name), StatusReport)
    wrong = [await check(status, f"stranger{n}", person.nik, "Orang Lain") for n in range(6)]
    assert wrong[:5] == [LookupFailure.NOT_FOUND] * 5
    assert isinstance(wrong[5], Throttled) and wrong[5].reason is ThrottleReason.NIK
    assert 8 * 3600 < wrong[5].retry_after_s <= 9 * 3600
    # Locked for a new address even with the right name; the owner is still answered.
    locked = await check(status, "newcomer", person.nik, person.name)
    assert isinstance(locked, Throttled) and locked.reason is ThrottleReason.NIK
    assert isinstance(await check(status, "owner", person.nik, person.name), StatusReport)
    clock.now += timedelta(hours=9)  # a new day in Jakarta
    assert isinstance(await check(status, "newcomer", person.nik, person.name), StatusReport)


async def test_concurrent_wrong_names_for_one_nik_let_exactly_the_limit_through(
    services: Services, sandbox: RunningSandbox
) -> None:
    clock = Clock()
    status = status_service(services, clock)
    person = sandbox.population.sample(1)[0]
    outcomes = await asyncio.gather(
        *(check(status, f"address{n}", person.nik, f"Tebakan {n}") for n in range(40))
    )
    assert outcomes.count(LookupFailure.NOT_FOUND) == LIMITS.name_failures_per_nik
    refused = [o for o in outcomes if isinstance(o, Throttled)]
    assert len(refused) == 40 - LIMITS.name_failures_per_nik
    assert {o.reason for o in refused} == {ThrottleReason.NIK}


async def test_concurrent_checks_from_one_address_let_exactly_the_limit_through(
    services: Services, sandbox: RunningSandbox
) -> None:
    status = status_service(services, Clock())
    people = sandbox.population.sample(20)
    outcomes = await asyncio.gather(*(check(status, "one-phone", p.nik, p.name) for p in people))
    assert sum(isinstance(o, StatusReport) for o in outcomes) == LIMITS.short_limit


async def test_the_service_wide_ceiling_holds_across_shards(
    services: Services, sandbox: RunningSandbox
) -> None:
    clock = Clock()
    ceiling = LookupLimits(10, timedelta(minutes=10), 20, 5, global_per_minute=11)
    status = status_service(services, clock, ceiling)
    people = sandbox.population.sample(30)
    outcomes = await asyncio.gather(
        *(check(status, f"phone{n}", p.nik, p.name) for n, p in enumerate(people))
    )
    # Shards are picked at random, so some may fill before others: never more than the
    # ceiling, and whatever is refused is refused as "busy", for under a minute.
    admitted = sum(isinstance(o, StatusReport) for o in outcomes)
    assert 1 <= admitted <= 11
    refused = [o for o in outcomes if isinstance(o, Throttled)]
    assert refused and all(o.reason is ThrottleReason.BUSY for o in refused)
    assert all(o.retry_after_s <= 60 for o in refused)


async def test_a_registry_outage_costs_nobody_their_checks(
    services: Services, sandbox: RunningSandbox
) -> None:
    clock = Clock()
    status = status_service(services, clock)
    people = sandbox.population.sample(LIMITS.per_day * 2)
    await set_down(sandbox, True)
    during = [await check(status, "phone-a", p.nik, "Nama Salah") for p in people]
    assert during == [LookupFailure.UNAVAILABLE] * len(people)
    await set_down(sandbox, False)
    after = [await check(status, "phone-a", p.nik, p.name) for p in people[:3]]
    assert [type(o) for o in after] == [StatusReport] * 3
    async with services.database.transaction() as session:
        used = dict(
            (
                await session.execute(
                    text("SELECT scope, SUM(used) FROM admission_counters GROUP BY scope")
                )
            ).all()
        )
    # Only the three answered checks are counted; the wrong names during the outage
    # never reached the registry, so they cost the NIKs nothing either.
    assert used["addr-short"] == 3 and used["addr-day"] == 3 and used.get("nik-fail", 0) == 0


async def test_counters_hold_no_nik_and_no_address_in_clear(
    services: Services, sandbox: RunningSandbox
) -> None:
    status = status_service(services, Clock())
    person = sandbox.population.sample(1)[0]
    await check(status, "+628123456789", person.nik, person.name)
    await check(status, "+628123456789", person.nik, "Nama Salah")
    async with services.database.transaction() as session:
        dump = repr((await session.execute(text("SELECT * FROM admission_counters"))).all())
        dump += repr((await session.execute(text("SELECT * FROM nik_matches"))).all())
    keys = KeyRing.from_secret(TEST_SECRET_KEY)
    assert keys.nik_hash(person.nik) in dump
    assert person.nik not in dump and person.name.upper() not in dump.upper()


async def test_facilitators_have_higher_limits_per_chat_still_atomic_and_the_same_per_nik(
    services: Services, sandbox: RunningSandbox
) -> None:
    keys = KeyRing.from_secret(TEST_SECRET_KEY)
    wider = LookupLimits(
        short_limit=8,
        short_window=LIMITS.short_window,
        per_day=50,
        name_failures_per_nik=LIMITS.name_failures_per_nik,
        global_per_minute=LIMITS.global_per_minute,
    )
    status = StatusService(
        services.registry,
        services.database,
        keys,
        limits=LIMITS,
        facilitator_limits=wider,
        clock=Clock(),
    )

    async def admit(address: str, nik: str, *, facilitator: bool) -> bool:
        async with services.database.unit() as unit:
            taken = await status.admit(unit, "telegram", address, nik, facilitator=facilitator)
        return not isinstance(taken, Throttled)

    niks = [p.nik for p in sandbox.population.sample(20)]
    as_facilitator = await asyncio.gather(*(admit("chat-f", n, facilitator=True) for n in niks))
    as_citizen = await asyncio.gather(*(admit("chat-c", n, facilitator=False) for n in niks))
    assert (sum(as_facilitator), sum(as_citizen)) == (wider.short_limit, LIMITS.short_limit)
    # Guessing one household's name is bounded as for anyone: the per-NIK limit holds.
    one = next(p.nik for p in sandbox.population.sample(40) if p.nik not in niks)
    guesses = await asyncio.gather(*(admit(f"chat-{n}", one, facilitator=True) for n in range(9)))
    assert sum(guesses) == LIMITS.name_failures_per_nik
