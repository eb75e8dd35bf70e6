"""The four languages end to end: the first message takes the Telegram app's language
when it is one of ours, /bahasa and the USSD menu change it, and the choice outlives a
restart of the service and is the language of the quarterly notices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import Services, build_services
from bot.i18n import translator
from bot.settings import Settings
from handlers.telegram import TelegramOutbound
from handlers.web import create_web_app
from registry_client.sandbox import RunningSandbox
from tests.support.fake_telegram import FakeTelegram, running_fake_telegram
from tests.support.telegram_bot import polling_bot
from tests.test_notices import advance, everyone
from tests.ussd_phone import UssdPhone

JAVANESE_CHAT = 8101
FRENCH_CHAT = 8102

MENU = "DTSEN social-aid service. What would you like to do?"
MENU_BRIEF = "DTSEN aid: free, never PIN/OTP"
AGREE = "Agree, check status"
NIK_PROMPT = "Type the NIK: the 16 digits on the KTP or the family card (KK)."
NIK_BRIEF = "Enter the NIK (16 digits, as on the KTP):"
DECILES = (
    "Welfare decile: {before} before, {after} now (decile 1 is the poorest tenth of households)."
)


def words(language: str, message: str) -> str:
    translated = translator(language).gettext(message)
    assert translated != message or language == "en", f"{message!r} is not translated"
    return translated


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as server:
        server.add_user(JAVANESE_CHAT, first_name="Sarni", language_code="jv")
        server.add_user(FRENCH_CHAT, first_name="Anne", language_code="fr")
        yield server


async def restarted(settings: Settings, sandbox: RunningSandbox) -> Services:
    """A new process's services on the same database: nothing kept in memory survives."""
    return await build_services(settings, registry_url=sandbox.url)


def buttons(message: dict[str, Any]) -> dict[str, str]:
    markup = message.get("reply_markup") or {}
    return {b["callback_data"]: b["text"] for row in markup["inline_keyboard"] for b in row}


async def test_telegram_takes_the_apps_language_then_the_chosen_one_across_a_restart(
    fake: FakeTelegram, services: Services, settings: Settings, sandbox: RunningSandbox
) -> None:
    household = sandbox.population.sample(1)[0]
    async with polling_bot(fake, services):
        fake.send_text(JAVANESE_CHAT, "/start", language_code="jv")
        consent = await fake.next_reply(JAVANESE_CHAT)
        assert buttons(consent)["agree"] == words("jv", AGREE)
        fake.send_text(FRENCH_CHAT, "/start", language_code="fr")
        assert buttons(await fake.next_reply(FRENCH_CHAT))["agree"] == words("id", AGREE)

        fake.press_button(JAVANESE_CHAT, consent["message_id"], "agree", language_code="jv")
        asked = await fake.next_reply(JAVANESE_CHAT)
        assert words("jv", NIK_PROMPT) in asked["text"]
        fake.send_text(JAVANESE_CHAT, "/bahasa", language_code="jv")
        picker = await fake.next_reply(JAVANESE_CHAT)
        assert list(buttons(picker)) == ["id", "en", "jv", "su"]
        assert buttons(picker)["su"] == "Basa Sunda"
        fake.press_button(JAVANESE_CHAT, picker["message_id"], "su", language_code="jv")
        chosen = await fake.next_reply(JAVANESE_CHAT)
        assert words("su", "Language: English.") in chosen["text"]
    await services.close()

    again = await restarted(settings, sandbox)
    try:
        async with polling_bot(fake, again) as application:
            # The app still says Javanese; the person chose Sundanese, and that holds.
            fake.send_text(JAVANESE_CHAT, "/start", language_code="jv")
            assert words("su", MENU) in (await fake.next_reply(JAVANESE_CHAT))["text"]
            fake.send_text(JAVANESE_CHAT, "/langganan", language_code="jv")
            await fake.next_reply(JAVANESE_CHAT)
            fake.send_text(JAVANESE_CHAT, household.nik, language_code="jv")
            await fake.next_reply(JAVANESE_CHAT)
            fake.send_text(JAVANESE_CHAT, household.name, language_code="jv")
            confirm = await fake.next_reply(JAVANESE_CHAT)
            fake.press_button(JAVANESE_CHAT, confirm["message_id"], "yes", language_code="jv")
            await fake.next_reply(JAVANESE_CHAT)

            quarter = await advance(sandbox, changes=everyone(sandbox))
            ports = {"telegram": TelegramOutbound(application.bot)}
            summary = await again.notice_run(ports).run(quarter)
            assert summary.sent == 1
            notice = (await fake.next_reply(JAVANESE_CHAT))["text"]
            first_line = words("su", DECILES).split("{before}")[0]
            assert first_line in notice and words("id", DECILES).split("{")[0] not in notice
    finally:
        await again.close()


async def test_ussd_keeps_the_language_chosen_in_its_menu_across_a_restart(
    services: Services, settings: Settings, sandbox: RunningSandbox
) -> None:
    household = sandbox.population.sample(1)[0]

    async def phone_of(wired: Services, http: aiohttp.ClientSession) -> tuple[UssdPhone, Any]:
        server = TestServer(create_web_app(wired.ussd, wired.health), host="127.0.0.1")
        await server.start_server()
        return UssdPhone(http, str(server.make_url("/ussd")), phone="+6281234500077"), server

    async with aiohttp.ClientSession() as http:
        phone, server = await phone_of(services, http)
        try:
            await phone.dial()
            listed = await phone.answer("3")  # the language, from the consent screen
            assert "3 Basa Jawa" in listed and "4 Basa Sunda" in listed
            await phone.answer("3")
            asked = await phone.answer("1")  # agree
            assert words("jv", NIK_BRIEF) in asked and len(asked) - 4 <= 160
        finally:
            await server.close()
        await services.close()

        again = await restarted(settings, sandbox)
        try:
            phone, server = await phone_of(again, http)
            menu = await phone.dial()
            assert words("jv", MENU_BRIEF) in menu
            await phone.answer("5")  # change notices
            await phone.answer("1")  # follow a household
            await phone.answer(household.nik)
            await phone.answer(household.name)
            assert (await phone.answer("1")).startswith("END ")
            quarter = await advance(sandbox, changes=everyone(sandbox))
            assert (await again.notice_run({}).run(quarter)).held == 1
            shown = await phone.dial()  # the notice waits for the next dial, in Javanese
            assert shown.startswith("CON ") and len(shown) - 4 <= 160
            assert translator("jv").gettext("Menu") in shown
            await server.close()
        finally:
            await again.close()
