"""USSD gateways resend the whole session with each request: a repeated request must
change nothing, a lost one must not shift answers onto the wrong screens, and a `*`
typed inside an answer must not pass as a second answer."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from bot.app import Services
from registry_client.sandbox import RunningSandbox
from tests.ussd_phone import UssdPhone


async def registry_checks(services: Services) -> int:
    """Look-ups admitted today (each one reached the registry or was given back)."""
    async with services.database.transaction() as session:
        used = await session.execute(
            text("SELECT COALESCE(SUM(used), 0) FROM admission_counters WHERE scope = 'addr-day'")
        )
        return int(used.scalar_one())


async def agree_and_open_the_check(phone: UssdPhone) -> str:
    await phone.dial()
    await phone.answer("1")  # agree and check
    await phone.dial()
    return await phone.answer("1")  # menu: check status


async def test_a_repeated_request_shows_the_same_screen_and_changes_nothing(
    phone: UssdPhone, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1, programme="PKH")[0]
    asked_nik = await agree_and_open_the_check(phone)
    assert await phone.repeat() == asked_nik  # "1" is not read again, as a NIK this time
    asked_name = await phone.answer(person.nik)
    assert await phone.repeat() == asked_name
    result = await phone.answer(person.name)
    assert "PKH aktif" in result
    assert await phone.repeat() == result
    assert await registry_checks(services) == 1  # the retries did not ask the registry again


async def test_a_lost_request_leaves_the_dialog_where_the_phone_is(
    phone: UssdPhone, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1, programme="PKH")[0]
    await phone.dial()
    await phone.answer("1")  # agree
    await phone.dial()
    await phone.answer_lost("1")  # menu: check status; this request never arrives
    asked_name = await phone.answer(person.nik)  # the NIK is not read as a menu choice
    assert asked_name.startswith("CON ") and "nama" in asked_name.lower()
    await phone.answer_lost("00")  # home, lost too
    asked_nik = await phone.answer("1")
    assert asked_nik.startswith("CON ") and "NIK" in asked_nik and "nama" not in asked_nik


async def test_a_star_inside_a_name_is_refused_not_read_as_two_answers(
    phone: UssdPhone, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1, programme="PKH")[0]
    await agree_and_open_the_check(phone)
    asked_name = await phone.answer(person.nik)
    refused = await phone.answer(f"X*{person.name}")
    assert refused.startswith("CON ") and "*" in refused
    assert refused != asked_name and "nama" in refused.lower()
    assert await registry_checks(services) == 0  # neither part was checked
    result = await phone.answer(person.name)
    assert "PKH aktif" in result


async def test_a_late_copy_of_an_earlier_request_changes_nothing(
    phone: UssdPhone, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    await agree_and_open_the_check(phone)
    asked_name = await phone.answer(person.nik)
    phone.answers.pop()  # the gateway's copy of the request before, arriving late
    assert await phone.repeat() == asked_name
    phone.answers.append(person.nik)
    assert await phone.repeat() == asked_name


async def test_concurrent_copies_of_one_request_check_the_registry_once(
    phone: UssdPhone, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1, programme="PKH")[0]
    await agree_and_open_the_check(phone)
    await phone.answer(person.nik)
    phone.answers.append(person.name)
    screens = await asyncio.gather(*(phone.repeat() for _ in range(5)))
    assert await registry_checks(services) == 1
    assert any("PKH aktif" in screen for screen in screens)
    assert await phone.repeat() == next(s for s in screens if "PKH aktif" in s)
