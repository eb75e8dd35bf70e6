"""A fake Telegram Bot API server for end-to-end tests.

``FakeTelegram`` is a small aiohttp server on 127.0.0.1 that speaks the part of the Bot API a
python-telegram-bot (PTB) ``Application`` uses, so tests can run the real bot, polling or on a
webhook, with no internet. Tests play the user: ``send_text``, ``send_command``, ``press_button``,
``send_photo`` and ``send_document`` queue updates that the bot's ``getUpdates`` long poll picks
up; once the bot has called ``setWebhook``, the fake POSTs them to the webhook instead, one
at a time in order, with ``X-Telegram-Bot-Api-Secret-Token``, sending each again after a short
pause until it is answered 2xx (``webhook_deliveries`` lists every attempt, and
``wait_for_delivery`` waits for one). Tests then observe the bot: ``next_reply`` /
``wait_for`` return its calls in order without sleeps, ``messages_to`` shows its messages as
they are now (after edits), and ``calls`` logs every request. ``inject_retry_after`` and
``block_chat`` make Telegram answer with errors.

Point PTB at it like this (PTB appends the token to both URLs)::

    async with running_fake_telegram() as fake:
        app = (
            ApplicationBuilder()
            .token(fake.token)
            .base_url(f"{fake.api_url}/bot")
            .base_file_url(f"{fake.api_url}/file/bot")
            .build()
        )
        ...  # add handlers, initialize, start, app.updater.start_polling(poll_interval=0)
        fake.send_text(1001, "halo")
        reply = await fake.next_reply(1001)

Like Telegram, it answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code",
"description"}``; it checks what Telegram checks and tests are likely to trip over (unknown
chat, empty or too long text, callback_data over 64 bytes, "message is not modified",
invalid command names, bad HTML). ``parse_mode="HTML"`` is parsed into plain text plus
entities as a client would show it; Markdown modes are stored unparsed. User text gets
``bot_command`` entities the way Telegram adds them; no other entities are detected.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar, NamedTuple

import aiohttp
from aiohttp import web

JSONDict = dict[str, Any]

DEFAULT_TOKEN = "5000000001:AAFakeTelegram-token_for_tests_only0"

# Update types delivered when allowed_updates is empty, as documented for getUpdates.
_DEFAULT_ALLOWED_UPDATES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)

# Form fields that are plain strings. PTB JSON-encodes every other value, so "123" in one of
# these must stay a string while e.g. chat_id "123" is the number 123.
_STRING_PARAMS = frozenset(
    {
        "action",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "description",
        "emoji",
        "file_id",
        "file_name",
        "inline_message_id",
        "ip_address",
        "language_code",
        "message_effect_id",
        "name",
        "parse_mode",
        "secret_token",
        "short_description",
        "text",
        "title",
        "url",
    }
)

_COMMAND_RE = re.compile(r"(?:^|(?<=\s))/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{1,32})?")
_BOT_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
_LANGUAGE_CODE_RE = re.compile(r"(?:[a-z]{2})?")

_MAX_TEXT_LENGTH = 4096
_MAX_CAPTION_LENGTH = 1024
_MAX_CALLBACK_DATA_BYTES = 64
_MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
# After a failed webhook call, wait this long before the next, doubling up to the cap.
_WEBHOOK_RETRY_FIRST_S = 0.05
_WEBHOOK_RETRY_MAX_S = 1.0


class ApiCall(NamedTuple):
    """One Bot API request as the fake received it (``method`` as canonically spelled)."""

    method: str
    params: JSONDict


@dataclass(frozen=True)
class UploadedFile:
    """A file the bot uploaded in a multipart request; appears as a value in ``params``."""

    filename: str | None
    content_type: str
    content: bytes


@dataclass
class FakeUser:
    """A Telegram user; the bot itself is one too (``is_bot=True``)."""

    id: int
    first_name: str
    is_bot: bool = False
    username: str | None = None
    language_code: str | None = None

    def to_api(self) -> JSONDict:
        data: JSONDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username is not None:
            data["username"] = self.username
        if self.language_code is not None:
            data["language_code"] = self.language_code
        return data


@dataclass
class FakeChat:
    """A chat; private chats share their id with the user. Message ids count per chat."""

    id: int
    type: str = "private"
    first_name: str | None = None
    username: str | None = None
    title: str | None = None
    bot_blocked: bool = False
    last_message_id: int = 0

    def to_api(self) -> JSONDict:
        data: JSONDict = {"id": self.id, "type": self.type}
        for key in ("first_name", "username", "title"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


@dataclass
class StoredMessage:
    """A message in a chat, from the user or from the bot; edits update it in place."""

    message_id: int
    chat: FakeChat
    sender: FakeUser
    date: int
    text: str | None = None
    entities: list[JSONDict] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[JSONDict] = field(default_factory=list)
    reply_markup: JSONDict | None = None
    photo: list[JSONDict] | None = None
    document: JSONDict | None = None
    location: JSONDict | None = None
    reply_to: StoredMessage | None = None
    edit_date: int | None = None
    deleted: bool = False

    def to_api(self, *, with_reply: bool = True) -> JSONDict:
        data: JSONDict = {
            "message_id": self.message_id,
            "from": self.sender.to_api(),
            "chat": self.chat.to_api(),
            "date": self.date,
        }
        optional: JSONDict = {
            "edit_date": self.edit_date,
            "text": self.text,
            "entities": self.entities or None,
            "caption": self.caption,
            "caption_entities": self.caption_entities or None,
            "photo": self.photo,
            "document": self.document,
            "location": self.location,
            "reply_markup": self.reply_markup,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        if with_reply and self.reply_to is not None:
            data["reply_to_message"] = self.reply_to.to_api(with_reply=False)
        return data


@dataclass
class StoredFile:
    """File content reachable through getFile and ``/file/bot<token>/<file_path>``."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes

    def to_api(self) -> JSONDict:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.content),
            "file_path": self.file_path,
        }


@dataclass(frozen=True)
class WebhookDelivery:
    """One attempt to POST an update to the webhook: the HTTP status, or None when no
    answer came (refused connection, timeout)."""

    update: JSONDict
    status: int | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Record:
    """An answered request: what ``calls`` shows plus what the waiters need."""

    method: str
    params: JSONDict
    ok: bool
    result: Any
    consumed: bool = False


class TelegramApiError(Exception):
    """Raised by a method implementation; becomes Telegram's error answer."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def to_api(self) -> JSONDict:
        data: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            data["parameters"] = self.parameters
        return data


def _bad_request(description: str) -> TelegramApiError:
    return TelegramApiError(400, f"Bad Request: {description}")


MethodImpl = Callable[[JSONDict], Awaitable[Any]]


class FakeTelegram:
    """Bot API–compatible HTTP server holding the state of one bot and its chats."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        bot_username: str = "bansos_test_bot",
        bot_first_name: str = "Bansos Test Bot",
    ) -> None:
        self.token = token
        self.bot = FakeUser(
            id=int(token.split(":")[0]),
            first_name=bot_first_name,
            is_bot=True,
            username=bot_username,
        )
        self.users: dict[int, FakeUser] = {}
        self.chats: dict[int, FakeChat] = {}
        self._messages: dict[tuple[int, int], StoredMessage] = {}
        self._files: dict[str, StoredFile] = {}
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._pending_updates: list[JSONDict] = []
        self._allowed_updates: frozenset[str] = _DEFAULT_ALLOWED_UPDATES
        self._webhook_url = ""
        self._webhook_secret = ""
        self._webhook_max_connections = 40
        self._webhook_last_error = ""
        self._webhook_last_error_at = 0
        self._webhook_delivery: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._deliveries_seen = 0
        self._retry_after: dict[str, list[int]] = {}
        self._answers_to_lose = 0
        self._records: list[_Record] = []
        self._update_ids = itertools.count(100_001)
        self._ids = itertools.count(1)
        self._poll_generation = 0
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._methods: dict[str, tuple[str, MethodImpl]] = {
            name.lower(): (name, impl)
            for name, impl in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "sendPhoto": self._send_photo,
                "sendDocument": self._send_document,
                "sendChatAction": self._send_chat_action,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getFile": self._get_file,
            }.items()
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start serving on 127.0.0.1 at a free port."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Answer pending long polls, stop calling the webhook, shut the server down."""
        self._closing = True
        self._notify()
        if self._webhook_delivery is not None:
            self._webhook_delivery.cancel()
            await asyncio.gather(self._webhook_delivery, return_exceptions=True)
            self._webhook_delivery = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:PORT``."""
        if self._port is None:
            raise RuntimeError("FakeTelegram is not started")
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ user actions

    def add_user(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "id",
    ) -> FakeUser:
        """Make a user (and their private chat) known, as if they had started the bot."""
        user = self.users.get(user_id)
        if user is None:
            user = FakeUser(
                id=user_id,
                first_name=first_name or f"User{user_id}",
                username=username,
                language_code=language_code,
            )
            self.users[user_id] = user
        if user_id not in self.chats:
            self.chats[user_id] = FakeChat(
                id=user_id, first_name=user.first_name, username=user.username
            )
        return user

    def block_chat(self, chat_id: int) -> None:
        """From now on every method aimed at ``chat_id`` answers 403 "bot was blocked"."""
        if chat_id not in self.chats:
            if chat_id < 0:
                raise ValueError(f"unknown group chat {chat_id}")
            self.add_user(chat_id)
        self.chats[chat_id].bot_blocked = True

    def unblock_chat(self, chat_id: int) -> None:
        """Undo ``block_chat``."""
        self.chats[chat_id].bot_blocked = False

    def inject_retry_after(self, method: str, retry_after: int, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and ``retry_after`` seconds."""
        self._retry_after.setdefault(method.lower(), []).extend([retry_after] * times)

    def lose_webhook_answers(self, times: int = 1) -> None:
        """The next ``times`` webhook answers are lost on the way back (the bot handled
        the update and said 200, Telegram never heard it), so each update is posted
        again, as Telegram does."""
        self._answers_to_lose += times

    def deliver_again(self, message: JSONDict) -> None:
        """Telegram delivers the user's ``message`` (as ``send_text`` and the like return
        it) once more, as after a bot restarted in polling mode before confirming it. The
        update number is new, since this fake forgets confirmed updates; the message and
        its number are the same."""
        self._enqueue("message", message)

    def send_text(
        self, chat_id: int, text: str, *, user_id: int | None = None, language_code: str = "id"
    ) -> JSONDict:
        """The user sends ``text``; returns the Message. ``/commands`` get bot_command entities."""
        chat, user = self._user_in_chat(chat_id, user_id, language_code)
        message = self._store_message(chat, user, text=text, entities=_command_entities(text))
        return self._enqueue_message(message)

    def send_command(
        self, chat_id: int, command: str, *, user_id: int | None = None, language_code: str = "id"
    ) -> JSONDict:
        """The user sends e.g. ``"/cek"`` or ``"/start payload"`` (bot_command at offset 0)."""
        if not _COMMAND_RE.match(command):
            raise ValueError(f"not a bot command: {command!r}")
        return self.send_text(chat_id, command, user_id=user_id, language_code=language_code)

    def send_photo(
        self,
        chat_id: int,
        jpeg_bytes: bytes,
        caption: str | None = None,
        *,
        user_id: int | None = None,
        language_code: str = "id",
    ) -> JSONDict:
        """The user sends a photo; its bytes are served through getFile + file download."""
        chat, user = self._user_in_chat(chat_id, user_id, language_code)
        message = self._store_message(
            chat, user, caption=caption, photo=self._photo_sizes(jpeg_bytes)
        )
        return self._enqueue_message(message)

    def send_document(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
        *,
        user_id: int | None = None,
        language_code: str = "id",
    ) -> JSONDict:
        """The user sends a file; its bytes are served through getFile + file download."""
        chat, user = self._user_in_chat(chat_id, user_id, language_code)
        message = self._store_message(
            chat, user, caption=caption, document=self._document(data, file_name, mime_type)
        )
        return self._enqueue_message(message)

    def send_location(
        self,
        chat_id: int,
        latitude: float,
        longitude: float,
        *,
        user_id: int | None = None,
        language_code: str = "id",
    ) -> JSONDict:
        """The user shares a location (paperclip, then Location)."""
        chat, user = self._user_in_chat(chat_id, user_id, language_code)
        where = {"latitude": latitude, "longitude": longitude}
        return self._enqueue_message(self._store_message(chat, user, location=where))

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        callback_data: str,
        *,
        user_id: int | None = None,
        language_code: str = "id",
    ) -> JSONDict:
        """The user taps the inline button with ``callback_data`` on a bot message.

        Returns the CallbackQuery. Raises ``ValueError`` if that message has no such button,
        because a real user could not press it.
        """
        chat, user = self._user_in_chat(chat_id, user_id, language_code)
        message = self._messages.get((chat.id, message_id))
        if message is None or message.deleted or message.sender.id != self.bot.id:
            raise ValueError(f"no bot message {message_id} in chat {chat_id}")
        buttons = [
            button.get("callback_data")
            for row in (message.reply_markup or {}).get("inline_keyboard", [])
            for button in row
        ]
        if callback_data not in buttons:
            raise ValueError(f"message {message_id} has no button {callback_data!r}: {buttons}")
        query_id = str(7_000_000_000_000_000_000 + next(self._ids))
        self._callback_queries[query_id] = False
        query: JSONDict = {
            "id": query_id,
            "from": user.to_api(),
            "message": message.to_api(),
            "chat_instance": str(-chat.id * 1000 - 7),
            "data": callback_data,
        }
        self._enqueue("callback_query", query)
        return query

    # ------------------------------------------------------------------ observation

    @property
    def calls(self) -> list[ApiCall]:
        """Every request answered so far, in order, errors included (getUpdates too)."""
        return [ApiCall(record.method, record.params) for record in self._records]

    def messages_to(self, chat_id: int) -> list[JSONDict]:
        """The bot's messages in ``chat_id`` as they are now (edited, not deleted)."""
        return [
            message.to_api()
            for (msg_chat_id, _), message in sorted(self._messages.items())
            if msg_chat_id == chat_id and message.sender.id == self.bot.id and not message.deleted
        ]

    def commands(
        self, scope: JSONDict | None = None, language_code: str | None = None
    ) -> list[JSONDict]:
        """Commands stored by setMyCommands for ``scope`` (default scope) and language."""
        return [dict(c) for c in self._commands.get(_commands_key(scope, language_code), [])]

    def file_content(self, file_id: str) -> bytes:
        """Bytes behind a file_id (a user's upload or a file the bot sent)."""
        return self._files[file_id].content

    async def wait_for(
        self,
        method: str,
        *,
        chat_id: int | None = None,
        predicate: Callable[[JSONDict], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the test, not for I/O
    ) -> JSONDict:
        """Params of the earliest call of ``method`` not yet returned by a previous wait.

        Matches calls answered with an error too. Raises ``AssertionError`` after ``timeout``.
        """
        wanted = method.lower()

        def matches(record: _Record) -> bool:
            return (
                record.method.lower() == wanted
                and (chat_id is None or _chat_id_of(record.params) == chat_id)
                and (predicate is None or predicate(record.params))
            )

        record = await self._wait_record(matches, timeout, f"{method} (chat_id={chat_id})")
        return record.params

    async def next_reply(self, chat_id: int, timeout: float = 5.0) -> JSONDict:  # noqa: ASYNC109
        """The Message of the next successful sendMessage to ``chat_id`` (as sent)."""

        def matches(record: _Record) -> bool:
            return (
                record.method == "sendMessage"
                and record.ok
                and _chat_id_of(record.params) == chat_id
            )

        record = await self._wait_record(matches, timeout, f"a reply to chat {chat_id}")
        return dict(record.result)

    async def wait_for_delivery(
        self,
        predicate: Callable[[WebhookDelivery], bool] | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the test, not for I/O
    ) -> WebhookDelivery:
        """The earliest webhook attempt matching ``predicate`` not yet returned by a previous
        wait. Raises ``AssertionError`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index in range(self._deliveries_seen, len(self.webhook_deliveries)):
                delivery = self.webhook_deliveries[index]
                if predicate is None or predicate(delivery):
                    self._deliveries_seen = index + 1
                    return delivery
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for a webhook delivery; "
                    f"statuses so far: {[d.status for d in self.webhook_deliveries][-15:]}"
                )
            await self._wait_for_change(remaining)

    # ------------------------------------------------------------------ HTTP layer

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if match := re.fullmatch(r"/file/bot([^/]+)/(.+)", request.path):
            return self._download(match[1], match[2])
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z0-9_]*)", request.path)
        if match is None:
            return _error_response(TelegramApiError(404, "Not Found"))
        if match[1] != self.token:
            return _error_response(TelegramApiError(401, "Unauthorized"))
        name, impl = self._methods.get(match[2].lower(), (match[2], None))
        params: JSONDict = {}
        try:
            params = await _read_params(request)
            if impl is None:
                raise TelegramApiError(404, "Not Found: method not found")
            self._check_injected_errors(name, params)
            result = await impl(params)
        except TelegramApiError as exc:
            self._record(name, params, ok=False, result=exc)
            return _error_response(exc)
        except Exception as exc:  # a gap in the fake: fail loudly, in Telegram's format
            error = TelegramApiError(500, f"Internal Server Error: FakeTelegram failed: {exc!r}")
            self._record(name, params, ok=False, result=error)
            return _error_response(error)
        self._record(name, params, ok=True, result=result)
        return web.json_response({"ok": True, "result": result})

    def _download(self, token: str, file_path: str) -> web.StreamResponse:
        if token != self.token:
            return _error_response(TelegramApiError(401, "Unauthorized"))
        for stored in self._files.values():
            if stored.file_path == file_path:
                return web.Response(body=stored.content, content_type="application/octet-stream")
        return _error_response(TelegramApiError(404, "Not Found"))

    def _check_injected_errors(self, name: str, params: JSONDict) -> None:
        pending = self._retry_after.get(name.lower())
        if pending:
            seconds = pending.pop(0)
            raise TelegramApiError(
                429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds}
            )
        chat_id = _chat_id_of(params)
        chat = self.chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is not None and chat.bot_blocked:
            raise TelegramApiError(403, "Forbidden: bot was blocked by the user")

    def _record(self, method: str, params: JSONDict, *, ok: bool, result: Any) -> None:
        self._records.append(_Record(method, params, ok, result))
        self._notify()

    def _notify(self) -> None:
        """Wake everything waiting for a change (long polls, wait_for)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_for_change(self, seconds: float) -> None:
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)

    async def _wait_record(
        self, matches: Callable[[_Record], bool], seconds: float, what: str
    ) -> _Record:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            for record in self._records:
                if not record.consumed and matches(record):
                    record.consumed = True
                    return record
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [r.method for r in self._records if r.method != "getUpdates"][-15:]
                raise AssertionError(
                    f"timed out after {seconds}s waiting for {what}; last calls: {seen}"
                )
            await self._wait_for_change(remaining)

    # ------------------------------------------------------------------ state helpers

    def _user_in_chat(
        self, chat_id: int, user_id: int | None, language_code: str
    ) -> tuple[FakeChat, FakeUser]:
        if chat_id > 0:
            if user_id not in (None, chat_id):
                raise ValueError("in a private chat the user id is the chat id")
            user = self.add_user(chat_id)
            user.language_code = language_code
            return self.chats[chat_id], user
        if user_id is None:
            raise ValueError("a group chat (negative id) needs user_id")
        user = self.add_user(user_id)
        user.language_code = language_code
        chat = self.chats.setdefault(
            chat_id, FakeChat(id=chat_id, type="group", title=f"Group {-chat_id}")
        )
        return chat, user

    def _store_message(self, chat: FakeChat, sender: FakeUser, **content: Any) -> StoredMessage:
        chat.last_message_id += 1
        message = StoredMessage(
            message_id=chat.last_message_id,
            chat=chat,
            sender=sender,
            date=int(time.time()),
            **content,
        )
        self._messages[(chat.id, message.message_id)] = message
        return message

    def _enqueue_message(self, message: StoredMessage) -> JSONDict:
        data = message.to_api()
        self._enqueue("message", data)
        return data

    def _enqueue(self, kind: str, payload: JSONDict) -> None:
        # Like Telegram, updates of types the bot did not ask for are dropped, not delayed.
        if kind in self._allowed_updates:
            self._pending_updates.append({"update_id": next(self._update_ids), kind: payload})
            self._notify()

    def _store_file(self, content: bytes, file_path_prefix: str, suffix: str) -> StoredFile:
        number = next(self._ids)
        stored = StoredFile(
            file_id=f"FAKEFILE{number:06d}",
            file_unique_id=f"UNIQ{number:06d}",
            file_path=f"{file_path_prefix}/file_{number}{suffix}",
            content=content,
        )
        self._files[stored.file_id] = stored
        return stored

    def _photo_sizes(self, content: bytes) -> list[JSONDict]:
        stored = self._store_file(content, "photos", ".jpg")
        width, height = _jpeg_size(content) or (800, 600)
        return [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": width,
                "height": height,
                "file_size": len(content),
            }
        ]

    def _document(self, content: bytes, file_name: str, mime_type: str) -> JSONDict:
        stored = self._store_file(content, "documents", _suffix(file_name))
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": len(content),
        }

    def _target_chat(self, params: JSONDict) -> FakeChat:
        chat_id = _chat_id_of(params)
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        chat: FakeChat | None
        if isinstance(chat_id, str):
            chat = next((c for c in self.chats.values() if f"@{c.username}" == chat_id), None)
        else:
            chat = self.chats.get(chat_id)
        if chat is None:
            raise _bad_request("chat not found")
        return chat

    def _bot_message(self, params: JSONDict, action: str) -> StoredMessage:
        if params.get("inline_message_id"):
            raise _bad_request("inline messages are not supported by FakeTelegram")
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        message = self._messages.get((chat.id, int(message_id)))
        if message is None or message.deleted:
            raise _bad_request(f"message to {action} not found")
        if message.sender.id != self.bot.id:
            raise _bad_request(f"message can't be {action}ed")
        return message

    def _reply_to(self, chat: FakeChat, params: JSONDict) -> StoredMessage | None:
        reply = _json_value(params.get("reply_parameters")) or {}
        message_id = reply.get("message_id", params.get("reply_to_message_id"))
        if message_id is None:
            return None
        message = self._messages.get((chat.id, int(message_id)))
        if message is None and not reply.get("allow_sending_without_reply"):
            raise _bad_request("message to be replied not found")
        return message

    # ------------------------------------------------------------------ Bot API methods

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self.bot.to_api(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self._webhook_url:
            raise TelegramApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is "
                "active; use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if params.get("allowed_updates") is not None:
            self._set_allowed_updates(params["allowed_updates"])
        # An update is confirmed by asking for a higher offset; -N keeps only the last N.
        if offset < 0:
            self._pending_updates = self._pending_updates[offset:]
        elif offset:
            self._pending_updates = [u for u in self._pending_updates if u["update_id"] >= offset]
        # A newer getUpdates ends an older one with 409, as Telegram does; this also frees
        # polls whose client has gone away (PTB cancels its poll on stop).
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise TelegramApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if self._pending_updates or self._closing:
                return self._pending_updates[:limit]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await self._wait_for_change(remaining)

    def _set_allowed_updates(self, value: Any) -> None:
        allowed = _json_value(value) or []
        self._allowed_updates = frozenset(allowed) if allowed else _DEFAULT_ALLOWED_UPDATES

    async def _set_webhook(self, params: JSONDict) -> bool:
        secret = str(params.get("secret_token") or "")
        if secret and not _SECRET_TOKEN_RE.fullmatch(secret):
            raise _bad_request("secret token contains unallowed characters")
        max_connections = int(params.get("max_connections") or 40)
        if not 1 <= max_connections <= 100:
            raise _bad_request("bad webhook: invalid max_connections")
        self._webhook_url = str(params.get("url") or "")  # an empty URL removes the webhook
        self._webhook_secret = secret
        self._webhook_max_connections = max_connections
        if params.get("allowed_updates") is not None:
            self._set_allowed_updates(params["allowed_updates"])
        if params.get("drop_pending_updates"):
            self._pending_updates.clear()
        if self._webhook_url and (self._webhook_delivery is None or self._webhook_delivery.done()):
            self._webhook_delivery = asyncio.create_task(self._deliver_to_webhook())
        self._notify()
        return True

    async def _delete_webhook(self, params: JSONDict) -> bool:
        self._webhook_url = ""
        if params.get("drop_pending_updates"):
            self._pending_updates.clear()
        self._notify()
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending_updates),
        }
        if self._webhook_url:
            info["max_connections"] = self._webhook_max_connections
            info["allowed_updates"] = sorted(self._allowed_updates)
            if self._webhook_last_error:
                info["last_error_date"] = self._webhook_last_error_at
                info["last_error_message"] = self._webhook_last_error
        return info

    async def _deliver_to_webhook(self) -> None:
        """As Telegram does: POST the oldest pending update until the webhook answers 2xx,
        pausing a little longer after each failure; then the next. Ends when the webhook is
        removed."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        failures = 0
        while self._webhook_url and not self._closing:
            if not self._pending_updates:
                await self._wait_for_change(1.0)
                continue
            update = self._pending_updates[0]
            delivery = WebhookDelivery(update, await self._post_update(update))
            self.webhook_deliveries.append(delivery)
            if delivery.ok and self._answers_to_lose:
                self._answers_to_lose -= 1
                self._notify()
                continue  # as if the 200 never arrived: the same update goes again
            if delivery.ok:
                failures = 0
                if self._pending_updates and self._pending_updates[0] is update:
                    self._pending_updates.pop(0)
            else:
                self._webhook_last_error = (
                    "Connection refused"
                    if delivery.status is None
                    else f"Wrong response from the webhook: {delivery.status}"
                )
                self._webhook_last_error_at = int(time.time())
            self._notify()
            if not delivery.ok:
                pause = min(_WEBHOOK_RETRY_MAX_S, _WEBHOOK_RETRY_FIRST_S * 2.0**failures)
                failures += 1
                await asyncio.sleep(pause)

    async def _post_update(self, update: JSONDict) -> int | None:
        assert self._http is not None
        headers = (
            {"X-Telegram-Bot-Api-Secret-Token": self._webhook_secret}
            if self._webhook_secret
            else {}
        )
        try:
            async with self._http.post(self._webhook_url, json=update, headers=headers) as answer:
                await answer.read()
                return answer.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat = self._target_chat(params)
        raw_text = params.get("text")
        if raw_text is None or not str(raw_text).strip():
            raise _bad_request("message text is empty")
        text, entities = _formatted(str(raw_text), params.get("parse_mode"), params.get("entities"))
        if _utf16_len(text) > _MAX_TEXT_LENGTH:
            raise _bad_request("message is too long")
        markup = _reply_markup(params)
        reply_to = self._reply_to(chat, params)
        message = self._store_message(
            chat, self.bot, text=text, entities=entities, reply_markup=markup, reply_to=reply_to
        )
        return message.to_api()

    async def _send_photo(self, params: JSONDict) -> JSONDict:
        chat = self._target_chat(params)
        stored = self._sent_file(params.get("photo"), "photos", ".jpg")  # Telegram re-encodes
        width, height = _jpeg_size(stored.content) or (800, 600)
        photo = [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": width,
                "height": height,
                "file_size": len(stored.content),
            }
        ]
        return self._send_media(chat, params, photo=photo)

    async def _send_document(self, params: JSONDict) -> JSONDict:
        chat = self._target_chat(params)
        upload = params.get("document")
        stored = self._sent_file(upload, "documents", None)
        name = upload.filename if isinstance(upload, UploadedFile) else None
        mime = upload.content_type if isinstance(upload, UploadedFile) else None
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": name or stored.file_path.rsplit("/", 1)[1],
            "mime_type": mime or "application/octet-stream",
            "file_size": len(stored.content),
        }
        return self._send_media(chat, params, document=document)

    def _send_media(self, chat: FakeChat, params: JSONDict, **media: Any) -> JSONDict:
        caption: str | None = None
        caption_entities: list[JSONDict] = []
        if params.get("caption"):
            caption, caption_entities = _formatted(
                str(params["caption"]), params.get("parse_mode"), params.get("caption_entities")
            )
            if _utf16_len(caption) > _MAX_CAPTION_LENGTH:
                raise _bad_request("message caption is too long")
        message = self._store_message(
            chat,
            self.bot,
            caption=caption,
            caption_entities=caption_entities,
            reply_markup=_reply_markup(params),
            reply_to=self._reply_to(chat, params),
            **media,
        )
        return message.to_api()

    def _sent_file(self, value: Any, file_path_prefix: str, suffix: str | None) -> StoredFile:
        """Store an upload, or resolve a file_id / URL; ``suffix=None`` keeps the upload's."""
        if isinstance(value, UploadedFile):
            if suffix is None:
                suffix = _suffix(value.filename or "")
            return self._store_file(value.content, file_path_prefix, suffix)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return self._store_file(b"", file_path_prefix, suffix or "")  # nothing is fetched
        raise _bad_request("wrong file identifier/HTTP URL specified")

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._target_chat(params)
        return True

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        message = self._bot_message(params, "edit")
        if message.text is None:
            raise _bad_request("there is no text in the message to edit")
        raw_text = params.get("text")
        if raw_text is None or not str(raw_text).strip():
            raise _bad_request("message text is empty")
        text, entities = _formatted(str(raw_text), params.get("parse_mode"), params.get("entities"))
        if _utf16_len(text) > _MAX_TEXT_LENGTH:
            raise _bad_request("message is too long")
        # Telegram drops the inline keyboard when an edit does not repeat it.
        markup = _reply_markup(params, inline_only=True)
        if (text, entities, markup) == (message.text, message.entities, message.reply_markup):
            raise _bad_request(_NOT_MODIFIED)
        message.text, message.entities, message.reply_markup = text, entities, markup
        message.edit_date = int(time.time())
        return message.to_api()

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        message = self._bot_message(params, "edit")
        markup = _reply_markup(params, inline_only=True)
        if markup == message.reply_markup:
            raise _bad_request(_NOT_MODIFIED)
        message.reply_markup = markup
        message.edit_date = int(time.time())
        return message.to_api()

    async def _delete_message(self, params: JSONDict) -> bool:
        chat = self._target_chat(params)
        message = self._messages.get((chat.id, int(params.get("message_id") or 0)))
        if message is None or message.deleted:
            raise _bad_request("message to delete not found")
        message.deleted = True
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if self._callback_queries.get(query_id, True):
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._callback_queries[query_id] = True
        return True

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = _json_value(params.get("commands"))
        if not isinstance(commands, list):
            raise _bad_request("commands must be a list")
        for command in commands:
            if not _BOT_COMMAND_NAME_RE.fullmatch(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._commands_key(params)
        if commands:
            self._commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self._commands.pop(key, None)
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return self._commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    def _commands_key(self, params: JSONDict) -> tuple[str, str]:
        language_code = str(params.get("language_code") or "")
        if not _LANGUAGE_CODE_RE.fullmatch(language_code):
            raise _bad_request("invalid language code specified")
        return _commands_key(_json_value(params.get("scope")), language_code)

    async def _get_file(self, params: JSONDict) -> JSONDict:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _bad_request("invalid file_id")
        if len(stored.content) > _MAX_DOWNLOAD_BYTES:  # as Telegram: bots get up to 20 MB
            raise _bad_request("file is too big")
        return stored.to_api()


_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


@contextlib.asynccontextmanager
async def running_fake_telegram(**kwargs: Any) -> AsyncIterator[FakeTelegram]:
    """``async with running_fake_telegram() as fake:`` — a started FakeTelegram, stopped after."""
    fake = FakeTelegram(**kwargs)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


# ---------------------------------------------------------------------- request decoding


async def _read_params(request: web.Request) -> JSONDict:
    """Merge query string and body (JSON, urlencoded or multipart) into one params dict."""
    params: JSONDict = {key: _form_value(key, value) for key, value in request.query.items()}
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise _bad_request("can't parse JSON request body") from exc
        if not isinstance(body, dict):
            raise _bad_request("request body must be a JSON object")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = UploadedFile(value.filename, value.content_type, value.file.read())
            else:
                params[key] = _form_value(key, str(value))
        for key, value in list(params.items()):  # "attach://<name>" points at an uploaded part
            if isinstance(value, str) and value.startswith("attach://"):
                params[key] = params.get(value.removeprefix("attach://"), value)
    return params


def _form_value(key: str, value: str) -> Any:
    """PTB sends non-string values JSON-encoded in form fields; decode those."""
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _json_value(value: Any) -> Any:
    """Nested objects may arrive already decoded or as a JSON string; accept both."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _bad_request("can't parse JSON object") from exc
    return value


def _chat_id_of(params: JSONDict) -> int | str | None:
    chat_id = params.get("chat_id")
    if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
        return int(chat_id)
    return chat_id if isinstance(chat_id, int | str) else None


def _commands_key(scope: JSONDict | None, language_code: str | None) -> tuple[str, str]:
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code or ""


def _error_response(error: TelegramApiError) -> web.Response:
    return web.json_response(error.to_api(), status=error.status)


def _reply_markup(params: JSONDict, *, inline_only: bool = False) -> JSONDict | None:
    """Validate reply_markup; return what Telegram echoes in the Message (inline only)."""
    markup = _json_value(params.get("reply_markup"))
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if inline_only:
            raise _bad_request("inline keyboard expected")
        return None  # reply keyboards, ForceReply and removals are not part of the Message
    for row in markup["inline_keyboard"]:
        for button in row:
            if not button.get("text"):
                raise _bad_request("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= _MAX_CALLBACK_DATA_BYTES:
                raise _bad_request("BUTTON_DATA_INVALID")
    return {"inline_keyboard": markup["inline_keyboard"]}


# ---------------------------------------------------------------------- text and entities


def _utf16_len(text: str) -> int:
    """Telegram measures text and entity offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[JSONDict]:
    return [
        {
            "type": "bot_command",
            "offset": _utf16_len(text[: m.start()]),
            "length": _utf16_len(m.group()),
        }
        for m in _COMMAND_RE.finditer(text)
    ]


def _formatted(text: str, parse_mode: Any, entities: Any) -> tuple[str, list[JSONDict]]:
    """Plain text and entities of a message, as a client would receive them."""
    if parse_mode and str(parse_mode).upper() == "HTML":
        return _TelegramHtml.parse(text)
    return text, list(_json_value(entities) or [])


class _TelegramHtml(HTMLParser):
    """The HTML subset of Telegram's parse_mode=HTML, turned into text + entities."""

    TAGS: ClassVar[dict[str, str]] = {
        "b": "bold",
        "strong": "bold",
        "i": "italic",
        "em": "italic",
        "u": "underline",
        "ins": "underline",
        "s": "strikethrough",
        "strike": "strikethrough",
        "del": "strikethrough",
        "tg-spoiler": "spoiler",
        "span": "spoiler",
        "a": "text_link",
        "code": "code",
        "pre": "pre",
        "blockquote": "blockquote",
        "tg-emoji": "custom_emoji",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.position = 0  # in UTF-16 code units
        self.open_tags: list[tuple[str, dict[str, str | None], int]] = []
        self.entities: list[JSONDict] = []

    @classmethod
    def parse(cls, text: str) -> tuple[str, list[JSONDict]]:
        parser = cls()
        parser.feed(text)
        parser.close()
        if parser.open_tags:
            raise _bad_request(
                f"can't parse entities: Can't find end tag corresponding to "
                f'start tag "{parser.open_tags[-1][0]}"'
            )
        entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(parser.parts), entities

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag not in self.TAGS or (tag == "span" and attributes.get("class") != "tg-spoiler"):
            raise _bad_request(f'can\'t parse entities: Unsupported start tag "{tag}"')
        self.open_tags.append((tag, attributes, self.position))

    def handle_endtag(self, tag: str) -> None:
        if not self.open_tags or self.open_tags[-1][0] != tag:
            raise _bad_request(f'can\'t parse entities: Unmatched end tag "{tag}"')
        _, attributes, start = self.open_tags.pop()
        if self.position == start:
            return
        entity: JSONDict = {
            "type": self.TAGS[tag],
            "offset": start,
            "length": self.position - start,
        }
        if tag == "a":
            entity["url"] = attributes.get("href") or ""
        if tag == "tg-emoji":
            entity["custom_emoji_id"] = attributes.get("emoji-id") or ""
        if tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.position += _utf16_len(data)


def _suffix(file_name: str) -> str:
    """ ".pdf" for "surat.pdf", "" without an extension."""
    return f".{file_name.rsplit('.', 1)[1]}" if "." in file_name else ""


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF segment, or None if it is not a readable JPEG."""
    if not data.startswith(b"\xff\xd8"):
        return None
    index = 2
    while index + 9 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            index += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[index + 5 : index + 7], "big")
            width = int.from_bytes(data[index + 7 : index + 9], "big")
            return width, height
        index += 2 + int.from_bytes(data[index + 2 : index + 4], "big")
    return None
