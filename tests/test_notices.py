"""Quarterly notices on SQLite and PostgreSQL: subscribe on Telegram and USSD, advance the
sandbox's quarter, run, and every matched subscriber hears exactly once; a run killed
halfway continues; Telegram's 429 pauses sending and a blocked bot retires the chat."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from bot.app import Services
from bot.dialogs.model import Reply
from bot.filings import Filer
from bot.notice_run import RunSummary
from bot.notice_watch import watch_quarters
from bot.outbound import Delivery
from bot.settings import Settings
from bot.storage.notice_repository import NoticeRepository
from handlers.telegram import TelegramOutbound
from handlers.telegram_broadcast import BotApiBroadcast
from handlers.web import create_web_app
from registry_client.sandbox import RunningSandbox
from tests.conftest import SANDBOX_TOKEN, TEST_SECRET_KEY
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram_bot import App
from tests.test_outbox import sandbox_json
from tests.ussd_phone import UssdPhone

CHAT = 6161


async def advance(sandbox: RunningSandbox, changes: int | None = None) -> str:
    body = {} if changes is None else {"changes": changes}
    answer = await sandbox_json(sandbox, "POST", "/sandbox/quarters/advance", json=body)
    return str(answer["quarter"])


def everyone(sandbox: RunningSandbox) -> int:
    """A change count that covers every registered person."""
    return sum(len(household.members) for household in sandbox.population.households)


async def run(services: Services, bot_app: App | None, quarter: str) -> RunSummary:
    ports = {} if bot_app is None else {"telegram": TelegramOutbound(bot_app.bot)}
    return await services.notice_run(ports).run(quarter)


async def changes_of(services: Services, quarter: str) -> dict[str, Any]:
    """Every change of the quarter, by NIK (the sandbox's feed, read as the bot reads it)."""
    found: dict[str, Any] = {}
    cursor = None
    while True:
        page = await services.registry.quarter_changes(quarter, cursor, limit=1000)
        found.update({change.nik: change for change in page.items})
        cursor = page.next_cursor
        if cursor is None:
            return found


async def test_a_telegram_subscriber_hears_exactly_once_what_changed(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    fake.send_text(CHAT, "/start", language_code="fr")  # not one of ours: Indonesian
    consent = await fake.next_reply(CHAT)
    fake.press_button(CHAT, consent["message_id"], "agree")
    await fake.next_reply(CHAT)
    fake.send_text(CHAT, "/langganan")
    assert "16" in (await fake.next_reply(CHAT))["text"]
    fake.send_text(CHAT, person.nik)
    await fake.next_reply(CHAT)
    fake.send_text(CHAT, person.name)
    confirm = await fake.next_reply(CHAT)
    fake.press_button(CHAT, confirm["message_id"], "yes")
    assert "/berhenti" in (await fake.next_reply(CHAT))["text"]

    quarter = await advance(sandbox, changes=everyone(sandbox))
    change = (await changes_of(services, quarter))[person.nik]
    summary = await run(services, bot_app, quarter)
    assert (summary.matched, summary.sent) == (1, 1)
    notice = (await fake.next_reply(CHAT))["text"]
    # Indonesian, the default: the chat never chose another language.
    assert f"sebelumnya {change.previous.decile}, sekarang {change.current.decile}" in notice
    for code in set(change.previous.programmes) ^ set(change.current.programmes):
        assert code in notice
    assert "/sanggah" in notice and "OTP" in notice and person.nik not in notice

    again = await run(services, bot_app, quarter)  # a second run sends nothing more
    assert (again.matched, again.sent) == (0, 0)
    sent = [c for c in fake.calls if c.method == "sendMessage" and c.params["chat_id"] == CHAT]
    assert sum("sebelumnya" in str(c.params["text"]) for c in sent) == 1


async def test_a_ussd_subscriber_sees_the_notice_once_at_the_next_dial(
    services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    server = TestServer(create_web_app(services.ussd, services.health), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            phone = UssdPhone(http, str(server.make_url("/ussd")))
            await phone.dial()
            await phone.answer("3")
            await phone.answer("2")  # English
            await phone.answer("1")  # agree
            await phone.dial()
            await phone.answer("5")  # change notices
            await phone.answer("1")  # follow a household
            await phone.answer(person.nik)
            confirm = await phone.answer(person.name)
            assert "1 Yes" in confirm
            done = await phone.answer("1")
            assert done.startswith("END ")
            quarter = await advance(sandbox, changes=everyone(sandbox))
            summary = await run(services, None, quarter)
            assert (summary.matched, summary.held) == (1, 1)
            shown = await phone.dial()
            assert shown.startswith("CON ") and "decile" in shown and len(shown) - 4 <= 160
            assert "1 Menu" in shown
            assert "decile" not in await phone.dial()  # once
            await phone.answer("5")
            stop = await phone.answer("2")  # a phone stops notices from the menu too
            assert "Choose one to stop" in stop and "1 " in stop and person.nik not in stop
            stopped = await phone.answer("1")
            assert "stopped" in stopped
    finally:
        await server.close()


async def subscribe_directly(services: Services, niks: list[str], first_chat: int) -> None:
    async with services.database.transaction() as session:
        for n, nik in enumerate(niks):
            chat = str(first_chat + n)
            who = Filer("telegram", chat, services.keys.address_hash("telegram", chat))
            await services.subscriptions.subscribe(session, who, nik)


async def test_a_run_killed_halfway_continues_and_each_subscriber_has_one_notice(
    fake: FakeTelegram, services: Services, sandbox: RunningSandbox, settings: Settings
) -> None:
    quarter = await advance(sandbox, changes=3000)
    niks = list(await changes_of(services, quarter))[:120]
    await subscribe_directly(services, niks, 900_000)
    for n in range(len(niks)):
        fake.add_user(900_000 + n)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "BOT_SECRET_KEY": TEST_SECRET_KEY,
        "BOT_VAR_DIR": str(settings.var_dir),
        "REGISTRY_URL": sandbox.url,
        "REGISTRY_TOKEN": SANDBOX_TOKEN,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_API_URL": fake.api_url,
        "NOTICE_RATE": "60",
        "NOTICE_LEASE_S": "2",  # the killed run's claims free up quickly
    }
    command = [sys.executable, "-m", "bot.cli", "notices", "run", "--quarter", quarter]
    pipes: dict[str, Any] = {"stdout": asyncio.subprocess.PIPE, "stderr": asyncio.subprocess.STDOUT}
    first = await asyncio.create_subprocess_exec(*command, env=env, **pipes)
    for _ in range(400):
        if sum(c.method == "sendMessage" for c in fake.calls) >= 40:
            break
        await asyncio.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    await first.communicate()
    sent_before = sum(c.method == "sendMessage" for c in fake.calls)
    assert 0 < sent_before < len(niks)
    second = await asyncio.create_subprocess_exec(*command, env={**env, "NOTICE_RATE": "200"},
                                                  **pipes)  # fmt: skip
    output = (await asyncio.wait_for(second.communicate(), 60))[0].decode()
    assert second.returncode == 0, output
    chats = [900_000 + n for n in range(len(niks))]
    per_chat = {chat: len(fake.messages_to(chat)) for chat in chats}
    assert all(count >= 1 for count in per_chat.values())  # nobody missed
    repeated = sum(count - 1 for count in per_chat.values())
    window = max(5, int(60 * 0.2)) * 2
    assert repeated <= window, (repeated, window)
    async with services.database.transaction() as session:
        assert (await NoticeRepository(session).counts(quarter)) == {"sent": len(niks)}


async def test_retry_after_pauses_and_a_blocked_chat_is_retired(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    quarter = await advance(sandbox, changes=2000)
    niks = list(await changes_of(services, quarter))[:30]
    await subscribe_directly(services, niks, 800_000)
    for n in range(len(niks)):
        fake.add_user(800_000 + n)
    blocked = {800_003, 800_017}
    for chat in blocked:
        fake.block_chat(chat)
    fake.inject_retry_after("sendMessage", 1, times=2)
    started = time.monotonic()
    summary = await run(services, bot_app, quarter)
    assert time.monotonic() - started >= 1.0  # the pause was honoured
    assert (summary.sent, summary.retired, summary.failed) == (28, 2, 0)
    delivered = {800_000 + n for n in range(len(niks)) if fake.messages_to(800_000 + n)}
    assert delivered == {800_000 + n for n in range(len(niks))} - blocked
    again = await run(services, bot_app, quarter)
    assert again.sent == 0  # retired subscriptions are not tried again


async def test_subscribe_from_a_check_then_stop_with_berhenti(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    first, second = sandbox.population.sample(2)
    fake.send_text(CHAT, "/start")
    consent = await fake.next_reply(CHAT)
    fake.press_button(CHAT, consent["message_id"], "agree")
    await fake.next_reply(CHAT)
    fake.send_text(CHAT, first.nik)
    await fake.next_reply(CHAT)
    fake.send_text(CHAT, first.name)
    result = await fake.next_reply(CHAT)
    fake.press_button(CHAT, result["message_id"], "subscribe_result")  # no NIK typed again
    assert "/berhenti" in (await fake.next_reply(CHAT))["text"]
    async with services.database.transaction() as session:
        who = Filer("telegram", str(CHAT), services.keys.address_hash("telegram", str(CHAT)))
        await services.subscriptions.subscribe(session, who, second.nik)
    fake.send_text(CHAT, "/berhenti")
    listed = await fake.next_reply(CHAT)
    keys = [b["callback_data"] for row in listed["reply_markup"]["inline_keyboard"] for b in row]
    assert len(keys) == 3 and keys[-1] == "home"  # two households, and the menu
    assert first.nik not in listed["text"] and first.nik[-4:] in str(listed["reply_markup"])
    fake.press_button(CHAT, listed["message_id"], keys[0])
    stopped = await fake.next_reply(CHAT)
    assert "Dihentikan" in stopped["text"]
    async with services.database.transaction() as session:
        remaining = await services.subscriptions.list(session, who)
    assert len(remaining.items) == 1


async def test_one_account_follows_at_most_the_configured_number_of_households(
    services: Services, sandbox: RunningSandbox
) -> None:
    who = Filer("telegram", "77", services.keys.address_hash("telegram", "77"))
    people = sandbox.population.sample(6)
    async with services.database.transaction() as session:
        outcomes = [await services.subscriptions.subscribe(session, who, p.nik) for p in people]
    assert [type(o).__name__ for o in outcomes] == ["Subscribed"] * 5 + ["TooManySubscriptions"]


async def test_the_watcher_runs_a_newly_published_quarter(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    async with services.database.transaction() as session:
        who = Filer("telegram", str(CHAT), services.keys.address_hash("telegram", str(CHAT)))
        await services.subscriptions.subscribe(session, who, person.nik)
    fake.add_user(CHAT)
    quarter = await advance(sandbox, changes=everyone(sandbox))
    stop = asyncio.Event()
    ports = {"telegram": TelegramOutbound(bot_app.bot)}
    watcher = asyncio.create_task(
        watch_quarters(
            services.database,
            services.registry,
            lambda: services.notice_run(ports),
            interval_s=0.1,
            stop=stop,
        )
    )
    notice = await fake.next_reply(CHAT, timeout=15)
    stop.set()
    await watcher
    assert quarter.replace("Q1", "") in notice["text"] and "/sanggah" in notice["text"]


async def test_the_broadcast_port_maps_telegram_answers(fake: FakeTelegram) -> None:
    fake.add_user(CHAT)
    fake.add_user(CHAT + 1)
    fake.block_chat(CHAT + 1)
    reply = Reply(text="Status bansos keluarga Anda berubah.")
    async with aiohttp.ClientSession() as http:
        port = BotApiBroadcast(http, f"{fake.api_url}/bot", fake.token, paid_broadcast=True)
        assert (await port.deliver(str(CHAT), reply)).outcome is Delivery.SENT
        assert (await port.deliver(str(CHAT + 1), reply)).outcome is Delivery.GONE
        assert (await port.deliver("424242", reply)).outcome is Delivery.GONE  # chat not found
        fake.inject_retry_after("sendMessage", 7)
        paused = await port.deliver(str(CHAT), reply)
        assert (paused.outcome, paused.retry_after) == (Delivery.RETRY, 7.0)
    sent = [c.params for c in fake.calls if c.method == "sendMessage" and "text" in c.params]
    assert sent[0]["allow_paid_broadcast"] is True
    assert [m["text"] for m in fake.messages_to(CHAT)] == [reply.text]


async def test_a_run_that_cannot_reach_telegram_leaves_its_notices_for_one_that_can(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    async with services.database.transaction() as session:
        who = Filer("telegram", str(CHAT), services.keys.address_hash("telegram", str(CHAT)))
        await services.subscriptions.subscribe(session, who, person.nik)
    fake.add_user(CHAT)
    quarter = await advance(sandbox, changes=everyone(sandbox))
    without_telegram = await run(services, None, quarter)
    assert (without_telegram.matched, without_telegram.sent, without_telegram.failed) == (1, 0, 0)
    async with services.database.transaction() as session:
        assert await NoticeRepository(session).counts(quarter) == {"pending": 1}
    with_telegram = await run(services, bot_app, quarter)
    assert with_telegram.sent == 1
