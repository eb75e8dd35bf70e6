"""The Telegram flows end to end: python-telegram-bot polling a Bot API–compatible fake
server, the dialog engine on each database, the sandbox registry over HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram.ext import Application

from bot.logging_setup import quiet_library_loggers
from registry_client.models import PROGRAMME_CODES
from registry_client.sandbox import RunningSandbox
from tests.support.fake_telegram import FakeTelegram, running_fake_telegram

CHAT = 4242


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as server:
        server.add_user(CHAT, first_name="Siti")
        yield server


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    markup = message.get("reply_markup") or {}
    return [
        (b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", []) for b in row
    ]


async def press(fake: FakeTelegram, message: dict[str, Any], key: str) -> dict[str, Any]:
    fake.press_button(CHAT, message["message_id"], key)
    await fake.wait_for("answerCallbackQuery")
    return await fake.next_reply(CHAT)


async def consent(fake: FakeTelegram) -> dict[str, Any]:
    fake.send_command(CHAT, "/start")
    notice = await fake.next_reply(CHAT)
    return await press(fake, notice, "agree")


async def at_the_name_prompt(fake: FakeTelegram, chat: int, nik: str) -> None:
    """Consent, /cek and the NIK typed in `chat`, each reply received: the name is next."""
    fake.send_command(chat, "/start")
    notice = await fake.next_reply(chat)
    fake.press_button(chat, notice["message_id"], "agree")
    await fake.next_reply(chat)
    fake.send_command(chat, "/cek")
    await fake.next_reply(chat)
    fake.send_text(chat, nik)
    await fake.next_reply(chat)


# How the Indonesian status page words each programme state.
STATE_WORDS = {"active": "aktif", "ended": "berhenti", "refused": "tidak disetujui"}


def assert_status_of(text: str, nik: str, sandbox: RunningSandbox) -> None:
    """`text` is the status page of the household the sandbox holds for `nik`: its decile,
    each of its programmes with its state (and amount), the others as not enrolled."""
    found = sandbox.population.find(nik)
    assert found is not None
    person, household = found
    assert f"Desil kesejahteraan {household.decile} dari 10" in text, text
    lines = text.splitlines()
    for programme in household.programmes:
        [line] = [ln for ln in lines if ln.startswith(("✅", "⛔")) and programme.code in ln]
        assert f": {STATE_WORDS[programme.status]}" in line, line
        if programme.status == "active" and programme.amount_idr is not None:
            assert f"Rp{programme.amount_idr:,}".replace(",", ".") in line, line
    enrolled = {programme.code for programme in household.programmes}
    missing = [code for code in PROGRAMME_CODES if code not in enrolled]
    if missing:
        assert f"Tidak terdaftar: {', '.join(missing)}." in text, text
    else:
        assert "Tidak terdaftar" not in text
    assert person.name not in text and person.nik not in text


async def test_commands_are_registered_per_language(
    fake: FakeTelegram, bot_app: Application[Any, Any, Any, Any, Any, Any]
) -> None:
    await fake.wait_for("setMyCommands", predicate=lambda p: p.get("language_code") == "en")
    scope = {"type": "all_private_chats"}
    indonesian = [c["command"] for c in fake.commands(scope=scope)]
    english = [c["command"] for c in fake.commands(scope=scope, language_code="en")]
    assert indonesian[:5] == ["cek", "usul", "sanggah", "perbaiki", "tiket"]
    assert english[:5] == ["check", "propose", "object", "correct", "tickets"]
    assert (
        fake.commands(scope=scope)[0]["description"]
        != fake.commands(scope=scope, language_code="en")[0]["description"]
    )


async def test_start_consent_check_nik_name_status(
    fake: FakeTelegram, bot_app: Application[Any, Any, Any, Any, Any, Any], sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1, programme="PKH")[0]
    fake.send_command(CHAT, "/start")
    notice = await fake.next_reply(CHAT)
    assert "OTP" in notice["text"] and "27" in notice["text"]
    assert [key for _, key in buttons(notice)] == ["agree", "decline", "language", "keeping"]

    asked_nik = await press(fake, notice, "agree")
    edited = await fake.wait_for("editMessageText", chat_id=CHAT)
    assert "»" in edited["text"]  # the spent question shows what was chosen, buttons gone
    assert "NIK" in asked_nik["text"]

    fake.send_command(CHAT, "/cek")
    assert "NIK" in (await fake.next_reply(CHAT))["text"]
    fake.send_text(CHAT, person.nik)
    asked_name = await fake.next_reply(CHAT)
    assert "KTP" in asked_name["text"]
    fake.send_text(CHAT, person.name.lower())
    result = await fake.next_reply(CHAT)
    assert_status_of(result["text"], person.nik, sandbox)  # its decile, programmes, amounts
    assert [key for _, key in buttons(result)] == [
        "check",
        "subscribe_result",
        "object_status",
        "home",
    ]


async def test_bad_inputs_get_reasons_and_keep_the_place(
    fake: FakeTelegram, bot_app: Application[Any, Any, Any, Any, Any, Any], sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    await consent(fake)
    fake.send_text(CHAT, "330201570889000")
    short = await fake.next_reply(CHAT)
    assert "16" in short["text"] and "15" in short["text"]
    fake.send_document(CHAT, b"%PDF-1.4", "ktp.pdf", "application/pdf")
    document = await fake.next_reply(CHAT)
    assert "NIK" in document["text"]
    fake.send_command(CHAT, "/hapus")
    unknown = await fake.next_reply(CHAT)
    assert "/cek" in unknown["text"] and "NIK" in unknown["text"]
    fake.send_text(CHAT, person.nik)
    assert "KTP" in (await fake.next_reply(CHAT))["text"]
    fake.send_text(CHAT, "Siti 123")
    digits = await fake.next_reply(CHAT)
    assert "KTP" in digits["text"]
    fake.send_text(CHAT, person.name)
    result = await fake.next_reply(CHAT)
    assert_status_of(result["text"], person.nik, sandbox)


async def test_unknown_nik_and_wrong_name_get_the_same_answer(
    fake: FakeTelegram, bot_app: Application[Any, Any, Any, Any, Any, Any], sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    unknown_nik = "3302015708890003"
    assert sandbox.population.find(unknown_nik) is None  # really unknown to the registry
    await consent(fake)
    answers = []
    for nik, name in [(person.nik, "Nama Lain Sekali"), (unknown_nik, person.name)]:
        fake.send_command(CHAT, "/cek")
        await fake.next_reply(CHAT)
        fake.send_text(CHAT, nik)
        await fake.next_reply(CHAT)
        fake.send_text(CHAT, name)
        answers.append((await fake.next_reply(CHAT))["text"])
    assert answers[0] == answers[1]


async def test_language_switch_with_bahasa(
    fake: FakeTelegram, bot_app: Application[Any, Any, Any, Any, Any, Any]
) -> None:
    await consent(fake)
    fake.send_command(CHAT, "/bahasa")
    picker = await fake.next_reply(CHAT)
    assert [key for _, key in buttons(picker)] == ["id", "en", "jv", "su"]
    english = await press(fake, picker, "en")
    assert english["text"].startswith("Language: English.")
    assert "NIK" in english["text"]  # back to the question that was open
    fake.send_command(CHAT, "/help")
    assert "/cek" in (await fake.next_reply(CHAT))["text"]


async def test_help_and_text_where_a_choice_is_expected(
    fake: FakeTelegram, bot_app: Application[Any, Any, Any, Any, Any, Any]
) -> None:
    fake.send_command(CHAT, "/bantuan")
    help_page = await fake.next_reply(CHAT)
    assert "/cek" in help_page["text"] and "/bahasa" in help_page["text"]
    fake.send_command(CHAT, "/start")
    notice = await fake.next_reply(CHAT)
    fake.send_text(CHAT, "ya")
    again = await fake.next_reply(CHAT)
    assert "1–4" in again["text"]
    assert buttons(again) == buttons(notice)


async def test_no_nik_or_name_reaches_the_logs(
    fake: FakeTelegram,
    bot_app: Application[Any, Any, Any, Any, Any, Any],
    sandbox: RunningSandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_library_loggers()  # as `bansos-bot serve` configures logging
    caplog.set_level(logging.DEBUG)
    person = sandbox.population.sample(1)[0]
    await consent(fake)
    fake.send_text(CHAT, person.nik)
    await fake.next_reply(CHAT)
    fake.send_text(CHAT, person.name)
    await fake.next_reply(CHAT)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert person.nik not in logged
    assert person.name not in logged


async def test_group_chats_are_sent_to_a_private_chat(
    fake: FakeTelegram, bot_app: Application[Any, Any, Any, Any, Any, Any]
) -> None:
    group = -100123
    fake.send_command(group, "/cek", user_id=CHAT)
    reply = await fake.next_reply(group)
    assert "pribadi" in reply["text"].lower() or "private" in reply["text"].lower()


async def test_a_second_tap_on_a_spent_question_only_says_it_is_spent(
    fake: FakeTelegram, bot_app: Application[Any, Any, Any, Any, Any, Any]
) -> None:
    fake.send_command(CHAT, "/start")
    notice = await fake.next_reply(CHAT)
    fake.press_button(CHAT, notice["message_id"], "agree")
    fake.press_button(CHAT, notice["message_id"], "agree")
    first = await fake.next_reply(CHAT)
    second = await fake.next_reply(CHAT)
    assert "NIK" in first["text"]
    assert second["text"].startswith("Tombol itu sudah tidak berlaku")
    assert all("Terjadi" not in m["text"] for m in fake.messages_to(CHAT))  # no error reply


async def test_a_message_telegram_delivers_twice_is_applied_once(
    fake: FakeTelegram, bot_app: Application[Any, Any, Any, Any, Any, Any], sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    await consent(fake)
    typed = fake.send_text(CHAT, person.nik)
    asked_name = await fake.next_reply(CHAT)
    fake.deliver_again(typed)  # the bot restarted before confirming it, say
    again = await fake.next_reply(CHAT)
    assert again["text"] == asked_name["text"]  # asked for the name again, not refused
    fake.send_text(CHAT, person.name)
    assert_status_of((await fake.next_reply(CHAT))["text"], person.nik, sandbox)
