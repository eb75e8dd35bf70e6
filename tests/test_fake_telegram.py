"""FakeTelegram is faithful enough: a real python-telegram-bot Application runs against it."""

from __future__ import annotations

import asyncio
import datetime as dtm
import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, EndPointNotFound, Forbidden, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.support.fake_telegram import FakeTelegram, UploadedFile, running_fake_telegram
from tests.test_cli import free_port

CHAT = 424242


def tiny_jpeg(width: int, height: int, payload: bytes) -> bytes:
    """Bytes that start like a baseline JPEG (SOI + SOF0), enough for sizes and round trips."""
    sof0 = (
        b"\xff\xc0\x00\x11\x08"
        + height.to_bytes(2, "big")
        + width.to_bytes(2, "big")
        + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    return b"\xff\xd8" + sof0 + payload + b"\xff\xd9"


# ---------------------------------------------------------------------- the bot under test


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(update.message.text)


async def cek(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text(f"cek: {' '.join(context.args or [])}")


async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    keyboard = [
        [InlineKeyboardButton("Ya", callback_data="yes")],
        [InlineKeyboardButton("Tidak", callback_data="no")],
    ]
    await update.message.reply_text("Lanjut?", reply_markup=InlineKeyboardMarkup(keyboard))


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer("Oke")
    await query.edit_message_text(f"Dipilih: {query.data}")


async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    size = update.message.photo[-1]
    data = await (await size.get_file()).download_as_bytearray()
    digest = hashlib.sha256(data).hexdigest()
    await update.message.reply_text(f"{size.width}x{size.height} {len(data)} {digest}")


async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.document is not None
    document = update.message.document
    data = await (await document.get_file()).download_as_bytearray()
    await update.message.reply_text(f"{document.file_name} {document.mime_type} {bytes(data)!r}")


def build_app(fake: FakeTelegram) -> Application[Any, Any, Any, Any, Any, Any]:
    app = (
        ApplicationBuilder()
        .token(fake.token)
        .base_url(f"{fake.api_url}/bot")
        .base_file_url(f"{fake.api_url}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("cek", cek))
    app.add_handler(CommandHandler("menu", menu))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(MessageHandler(filters.PHOTO, on_photo))
    app.add_handler(MessageHandler(filters.Document.ALL, on_document))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    return app


@pytest.fixture
async def app(fake: FakeTelegram) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    application = build_app(fake)
    await application.initialize()
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0, timeout=1)
    yield application
    started = time.monotonic()
    await application.updater.stop()
    await application.stop()
    await application.shutdown()
    assert time.monotonic() - started < 2


async def raw_call(
    fake: FakeTelegram, method: str, *, http: str = "POST", token: str | None = None, **body: Any
) -> tuple[int, dict[str, Any]]:
    url = f"{fake.api_url}/bot{token or fake.token}/{method}"
    async with aiohttp.ClientSession() as session:
        if http == "GET":
            request = session.get(url, params={k: str(v) for k, v in body.items()})
        else:
            request = session.post(url, json=body)
        async with request as response:
            return response.status, await response.json()


# ---------------------------------------------------------------------- through PTB


async def test_initialize_calls_get_me(fake: FakeTelegram, app: Application) -> None:
    assert app.bot.username == "bansos_test_bot"
    assert app.bot.id == 5000000001
    methods = [method for method, _ in fake.calls]
    assert methods[0] == "getMe"
    assert "deleteWebhook" in methods  # the updater's bootstrap


async def test_text_message_is_echoed(fake: FakeTelegram, app: Application) -> None:
    sent = fake.send_text(CHAT, "halo bot")
    reply = await fake.next_reply(CHAT)
    assert reply["text"] == "halo bot"
    assert reply["chat"] == {"id": CHAT, "type": "private", "first_name": f"User{CHAT}"}
    assert reply["from"]["is_bot"] is True
    assert reply["message_id"] == sent["message_id"] + 1  # ids count per chat, both sides
    assert isinstance(reply["date"], int)


async def test_replies_are_read_in_order(fake: FakeTelegram, app: Application) -> None:
    fake.send_text(CHAT, "satu")
    fake.send_text(CHAT, "dua")
    fake.send_text(CHAT + 1, "lain")
    assert (await fake.next_reply(CHAT))["text"] == "satu"
    assert (await fake.next_reply(CHAT))["text"] == "dua"
    assert (await fake.next_reply(CHAT + 1))["text"] == "lain"
    assert [m["text"] for m in fake.messages_to(CHAT)] == ["satu", "dua"]


async def test_command_has_entity_so_command_handler_matches(
    fake: FakeTelegram, app: Application
) -> None:
    message = fake.send_command(CHAT, "/cek 3171")
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 4}]
    assert (await fake.next_reply(CHAT))["text"] == "cek: 3171"
    fake.send_command(CHAT, "/cek@bansos_test_bot")
    assert (await fake.next_reply(CHAT))["text"] == "cek: "
    # Not echoed: filters.COMMAND saw the entity too.
    fake.send_text(CHAT, "selesai")
    assert (await fake.next_reply(CHAT))["text"] == "selesai"


async def test_button_press_is_answered_and_edits_the_message(
    fake: FakeTelegram, app: Application
) -> None:
    fake.send_command(CHAT, "/menu")
    prompt = await fake.next_reply(CHAT)
    assert prompt["reply_markup"]["inline_keyboard"][0][0] == {"text": "Ya", "callback_data": "yes"}

    query = fake.press_button(CHAT, prompt["message_id"], "yes")
    answer = await fake.wait_for("answerCallbackQuery")
    assert answer["callback_query_id"] == query["id"]
    assert answer["text"] == "Oke"
    edit = await fake.wait_for("editMessageText", chat_id=CHAT)
    assert edit["message_id"] == prompt["message_id"]

    [message] = fake.messages_to(CHAT)
    assert message["text"] == "Dipilih: yes"
    assert "reply_markup" not in message  # an edit without reply_markup drops the keyboard
    assert "edit_date" in message
    with pytest.raises(ValueError, match="no button"):
        fake.press_button(CHAT, prompt["message_id"], "no")


async def test_commands_are_stored_per_scope_and_language(
    fake: FakeTelegram, app: Application
) -> None:
    await app.bot.set_my_commands([BotCommand("cek", "Cek status bansos")], language_code="id")
    await app.bot.set_my_commands([BotCommand("cek", "Check aid status")], language_code="en")
    await app.bot.set_my_commands(
        [BotCommand("start", "Mulai")], scope=BotCommandScopeAllPrivateChats()
    )

    assert [c.description for c in await app.bot.get_my_commands(language_code="id")] == [
        "Cek status bansos"
    ]
    assert fake.commands(language_code="en") == [
        {"command": "cek", "description": "Check aid status"}
    ]
    assert fake.commands({"type": "all_private_chats"}) == [
        {"command": "start", "description": "Mulai"}
    ]
    assert fake.commands() == []
    assert await app.bot.delete_my_commands(language_code="en")
    assert await app.bot.get_my_commands(language_code="en") == ()
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await app.bot.set_my_commands([BotCommand("/Cek", "bad")])


async def test_user_photo_round_trips_through_get_file(
    fake: FakeTelegram, app: Application
) -> None:
    jpeg = tiny_jpeg(640, 480, os.urandom(50_000))
    message = fake.send_photo(CHAT, jpeg, caption="KTP saya")
    assert message["photo"][-1]["file_size"] == len(jpeg)
    reply = await fake.next_reply(CHAT)
    assert reply["text"] == f"640x480 {len(jpeg)} {hashlib.sha256(jpeg).hexdigest()}"
    get_file = await fake.wait_for("getFile")
    assert get_file["file_id"] == message["photo"][-1]["file_id"]


async def test_user_document_round_trips(fake: FakeTelegram, app: Application) -> None:
    fake.send_document(CHAT, b"%PDF-1.4 surat", "surat.pdf", "application/pdf")
    reply = await fake.next_reply(CHAT)
    assert reply["text"] == "surat.pdf application/pdf b'%PDF-1.4 surat'"


async def test_bot_uploads_are_multipart_and_downloadable(
    fake: FakeTelegram, app: Application
) -> None:
    fake.add_user(CHAT)
    jpeg = tiny_jpeg(32, 16, b"pixels")
    sent = await app.bot.send_photo(CHAT, photo=jpeg, caption="<b>Bukti</b>", parse_mode="HTML")
    assert sent.caption == "Bukti" and sent.photo[-1].width == 32
    upload = (await fake.wait_for("sendPhoto"))["photo"]
    assert isinstance(upload, UploadedFile) and upload.content == jpeg
    file = await app.bot.get_file(sent.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()) == jpeg

    document = await app.bot.send_document(CHAT, document=b"a;b\n1;2\n", filename="data.csv")
    assert document.document is not None
    assert document.document.file_name == "data.csv"
    assert fake.file_content(document.document.file_id) == b"a;b\n1;2\n"
    # Sending an existing file_id again does not upload anything.
    again = await app.bot.send_photo(CHAT, photo=sent.photo[-1].file_id)
    assert again.photo[-1].file_id == sent.photo[-1].file_id


async def test_retry_after_injection_raises_retry_after(
    fake: FakeTelegram, app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # else RetryAfter warns about int seconds
    fake.add_user(CHAT)
    fake.inject_retry_after("sendMessage", 7, times=2)
    for _ in range(2):
        with pytest.raises(RetryAfter) as caught:
            await app.bot.send_message(CHAT, "banjir")
        assert caught.value.retry_after == dtm.timedelta(seconds=7)
    assert (await app.bot.send_message(CHAT, "reda")).text == "reda"
    assert [p["text"] for m, p in fake.calls if m == "sendMessage"] == ["banjir", "banjir", "reda"]


async def test_blocked_chat_raises_forbidden(fake: FakeTelegram, app: Application) -> None:
    fake.block_chat(CHAT)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await app.bot.send_message(CHAT, "pengumuman")
    fake.unblock_chat(CHAT)
    assert (await app.bot.send_message(CHAT, "pengumuman")).text == "pengumuman"


async def test_unknown_method_is_not_found(fake: FakeTelegram, app: Application) -> None:
    with pytest.raises(EndPointNotFound):
        await app.bot.do_api_request("sendTelepathy", api_kwargs={"chat_id": CHAT})
    status, body = await raw_call(fake, "sendTelepathy")
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}


async def test_telegram_checks_that_catch_bot_bugs(fake: FakeTelegram, app: Application) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await app.bot.send_message(999, "siapa?")
    fake.add_user(CHAT)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await app.bot.send_message(CHAT, " ")
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
        await app.bot.send_message(CHAT, "tombol", reply_markup=markup)
    with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
        await app.bot.send_message(CHAT, "Halo <Budi>", parse_mode=ParseMode.HTML)

    sent = await app.bot.send_message(CHAT, "<b>Status</b>: aktif &amp; valid", parse_mode="HTML")
    assert sent.text == "Status: aktif & valid"
    assert sent.entities[0].type == "bold" and sent.entities[0].length == 6
    with pytest.raises(BadRequest, match="Message is not modified"):
        await app.bot.edit_message_text(
            "<b>Status</b>: aktif &amp; valid", CHAT, sent.message_id, parse_mode="HTML"
        )


# ---------------------------------------------------------------------- raw HTTP


async def test_wrong_token_is_unauthorized(fake: FakeTelegram) -> None:
    status, body = await raw_call(fake, "getMe", token="1:wrong")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    bot_app = ApplicationBuilder().token("1:wrong").base_url(f"{fake.api_url}/bot").build()
    with pytest.raises(InvalidToken):
        await bot_app.bot.initialize()
    await bot_app.bot.shutdown()


async def test_methods_are_case_insensitive_and_accept_get(fake: FakeTelegram) -> None:
    status, body = await raw_call(fake, "GETME", http="GET")
    assert status == 200 and body["result"]["username"] == "bansos_test_bot"
    fake.add_user(CHAT)
    status, body = await raw_call(fake, "sendmessage", http="GET", chat_id=CHAT, text="123")
    assert status == 200 and body["result"]["text"] == "123"
    assert fake.calls[-1] == ("sendMessage", {"chat_id": CHAT, "text": "123"})


async def test_get_updates_long_polls_and_confirms_by_offset(fake: FakeTelegram) -> None:
    started = time.monotonic()
    assert await raw_call(fake, "getUpdates", timeout=1) == (200, {"ok": True, "result": []})
    assert 0.9 < time.monotonic() - started < 2

    poll = asyncio.create_task(raw_call(fake, "getUpdates", timeout=10))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    fake.send_text(CHAT, "satu")
    _, body = await poll
    assert time.monotonic() - started < 0.5
    [update] = body["result"]
    assert update["message"]["text"] == "satu"

    fake.send_text(CHAT, "dua")
    _, body = await raw_call(fake, "getUpdates", limit=1)  # unconfirmed: delivered again
    assert [u["update_id"] for u in body["result"]] == [update["update_id"]]
    _, body = await raw_call(fake, "getUpdates", offset=update["update_id"] + 1)
    assert [u["message"]["text"] for u in body["result"]] == ["dua"]
    _, body = await raw_call(fake, "getUpdates", offset=body["result"][0]["update_id"] + 1)
    assert body["result"] == []


async def test_get_updates_honours_allowed_updates(fake: FakeTelegram) -> None:
    await raw_call(fake, "getUpdates", allowed_updates=["callback_query"])
    fake.send_text(CHAT, "tidak diminta")
    assert (await raw_call(fake, "getUpdates"))[1]["result"] == []
    await raw_call(fake, "getUpdates", allowed_updates=[])
    fake.send_text(CHAT, "diminta")
    [update] = (await raw_call(fake, "getUpdates"))[1]["result"]
    assert update["message"]["text"] == "diminta"


async def test_stop_does_not_wait_for_a_pending_long_poll() -> None:
    async with running_fake_telegram() as server:
        poll = asyncio.create_task(raw_call(server, "getUpdates", timeout=30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
    assert time.monotonic() - started < 1
    assert (await poll)[1]["result"] == []


async def test_wait_for_times_out_with_a_readable_error(fake: FakeTelegram) -> None:
    with pytest.raises(AssertionError, match="waiting for a reply to chat 1"):
        await fake.next_reply(1, timeout=0.1)


async def test_a_webhook_gets_each_update_in_order_again_until_it_answers_2xx(
    fake: FakeTelegram,
) -> None:
    answers = [503, 500]  # the first update is refused twice, then taken
    received: list[tuple[str | None, str]] = []

    async def webhook(request: web.Request) -> web.Response:
        update = await request.json()
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), update["message"]["text"])
        )
        return web.Response(status=answers.pop(0) if answers else 200)

    receiver = web.Application()
    receiver.router.add_post("/hook", webhook)
    server = TestServer(receiver, host="127.0.0.1")
    await server.start_server()
    try:
        closed = f"http://127.0.0.1:{free_port()}/hook"
        status, _ = await raw_call(fake, "setWebhook", url=closed, secret_token="s3cret_token")
        assert status == 200
        fake.send_text(CHAT, "satu")
        refused = await fake.wait_for_delivery()
        assert (refused.status, refused.update["message"]["text"]) == (None, "satu")
        assert (await raw_call(fake, "getUpdates"))[0] == 409  # no polling beside a webhook

        url = str(server.make_url("/hook"))
        await raw_call(fake, "setWebhook", url=url, secret_token="s3cret_token")
        fake.send_text(CHAT, "dua")
        await fake.wait_for_delivery(lambda d: d.ok and d.update["message"]["text"] == "dua")
        assert received == [("s3cret_token", text) for text in ("satu", "satu", "satu", "dua")]
        _, info = await raw_call(fake, "getWebhookInfo")
        assert info["result"]["url"] == url and info["result"]["pending_update_count"] == 0

        await raw_call(fake, "deleteWebhook")
        fake.send_text(CHAT, "tiga")  # polling again: it waits for getUpdates
        [update] = (await raw_call(fake, "getUpdates"))[1]["result"]
        assert update["message"]["text"] == "tiga" and len(received) == 4
    finally:
        await server.close()


async def test_a_lost_webhook_answer_brings_the_same_update_again(fake: FakeTelegram) -> None:
    received: list[int] = []

    async def webhook(request: web.Request) -> web.Response:
        received.append((await request.json())["update_id"])
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post("/hook", webhook)
    server = TestServer(receiver, host="127.0.0.1")
    await server.start_server()
    try:
        await raw_call(fake, "setWebhook", url=str(server.make_url("/hook")))
        fake.lose_webhook_answers(1)
        fake.send_text(CHAT, "satu")
        fake.send_text(CHAT, "dua")
        await fake.wait_for_delivery(lambda d: d.ok and d.update["message"]["text"] == "dua")
        first, second = received[0], received[-1]
        assert received == [first, first, second]  # 200 both times; the first was not heard
    finally:
        await server.close()


async def test_a_message_delivered_again_keeps_its_number(fake: FakeTelegram) -> None:
    sent = fake.send_text(CHAT, "satu")
    fake.deliver_again(sent)
    _, body = await raw_call(fake, "getUpdates")
    first, again = body["result"]
    assert first["message"] == again["message"] and first["message"]["message_id"] > 0
    assert again["update_id"] > first["update_id"]


async def test_set_webhook_checks_the_secret_as_telegram_does(fake: FakeTelegram) -> None:
    status, body = await raw_call(
        fake, "setWebhook", url="http://127.0.0.1:9/hook", secret_token="not allowed!"
    )
    assert status == 400 and "secret token" in body["description"]
