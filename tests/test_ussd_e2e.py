"""The status check through POST /ussd, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import aiohttp
import pytest

from bot.app import Services
from registry_client.sandbox import RunningSandbox
from tests.ussd_phone import UssdPhone


def screen_of(answer: str) -> str:
    return answer[4:]


async def test_status_check_in_four_requests(phone: UssdPhone, sandbox: RunningSandbox) -> None:
    person = sandbox.population.sample(1, programme="PKH")[0]
    first = await phone.dial()
    assert first.startswith("CON ")
    assert "1 Setuju" in first  # consent is the first choice on the first screen
    asked_nik = await phone.answer("1")
    assert asked_nik.startswith("CON ") and "NIK" in asked_nik
    asked_name = await phone.answer(person.nik)
    assert asked_name.startswith("CON ") and "nama" in asked_name.lower()
    result = await phone.answer(person.name.upper())
    assert result.startswith("END ")
    assert "PKH aktif" in result
    assert person.nik not in result and person.name not in result


async def test_every_screen_fits_160_characters(phone: UssdPhone, sandbox: RunningSandbox) -> None:
    person = sandbox.population.sample(1)[0]
    screens = [await phone.dial()]
    for answer in ["9", "abc", "3", "2", "1", "99", "1", "123", person.nik, "S1ti", person.name]:
        screens.append(await phone.answer(answer))
    assert all(len(screen_of(screen)) <= 160 for screen in screens), screens


async def test_returning_caller_keeps_consent_and_language(
    phone: UssdPhone, sandbox: RunningSandbox
) -> None:
    await phone.dial()
    await phone.answer("3")  # Bahasa/Language
    english = await phone.answer("2")
    assert "Agree" in english
    await phone.answer("1")  # agree
    menu = await phone.dial()  # a new session from the same phone
    assert menu.startswith("CON ")
    assert "Check aid status" in menu and "Agree" not in menu


async def test_bad_nik_keeps_the_step_with_a_reason(phone: UssdPhone) -> None:
    await phone.dial()
    await phone.answer("1")
    short = await phone.answer("330201570889000")
    assert short.startswith("CON ") and "15" in short and "16" in short
    letters = await phone.answer("33020157O8890003")
    assert letters.startswith("CON ") and "angka" in letters
    impossible = await phone.answer("3302013308890003")
    assert impossible.startswith("CON ") and "lahir" in impossible


async def test_zero_goes_back_and_double_zero_goes_home(
    phone: UssdPhone, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    await phone.dial()
    await phone.answer("1")
    await phone.answer(person.nik)
    back = await phone.answer("0")
    assert "NIK" in back and back.startswith("CON ")
    home = await phone.answer("00")
    assert home.startswith("CON ") and "1 Cek status" in home


async def test_unknown_nik_and_wrong_name_read_the_same(
    phone: UssdPhone, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    unknown_nik = "3302015708890003"
    assert sandbox.population.find(unknown_nik) is None  # really unknown to the registry
    answers = []
    for nik, name in [(person.nik, "Nama Yang Salah"), (unknown_nik, person.name)]:
        answers.append(await phone.check_status(nik, name))
    assert answers[0] == answers[1]
    assert answers[0].startswith("END ")


async def test_slow_registry_gets_an_end_screen_within_the_budget(
    phone: UssdPhone, sandbox: RunningSandbox, services: Services
) -> None:
    person = sandbox.population.sample(1)[0]
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox.url}/sandbox/faults", json={"latency_ms": 10_000})
    await phone.dial()
    await phone.answer("1")
    await phone.answer(person.nik)
    started = time.monotonic()
    answer = await phone.answer(person.name)
    elapsed = time.monotonic() - started
    budget = services.settings.ussd_lookup_budget_s
    assert answer.startswith("END ")
    assert "coba lagi" in answer.lower()
    assert elapsed < budget + 1.0


async def test_registry_down_is_a_clear_end_screen(
    phone: UssdPhone, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox.url}/sandbox/faults", json={"down": True})
    answer = await phone.check_status(person.nik, person.name)
    assert answer.startswith("END ") and "coba lagi" in answer.lower()


async def test_many_lookups_from_one_phone_are_throttled(
    phone: UssdPhone, sandbox: RunningSandbox, services: Services
) -> None:
    people = sandbox.population.sample(services.settings.lookups_short_limit + 1)
    answers = []
    for person in people:
        answers.append(await phone.check_status(person.nik, person.name))
    assert all("END " in answer for answer in answers)
    assert "Terlalu banyak" in answers[-1]
    assert "Terlalu banyak" not in answers[-2]


async def test_missing_session_is_a_bad_request(ussd_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(ussd_url, data={"text": ""}) as response:
        assert response.status == 400


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"sessionId=\xff\xfe&text=", "application/x-www-form-urlencoded"),
        (b"sessionId=a&text=", "application/x-www-form-urlencoded; charset=bogus"),
        (b"--x\r\n", "multipart/form-data"),
    ],
)
async def test_unreadable_bodies_get_a_400_not_a_500(
    ussd_url: str, body: bytes, content_type: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(ussd_url, data=body, headers={"Content-Type": content_type}) as response,
    ):
        assert response.status == 400
        assert "Traceback" not in await response.text()
