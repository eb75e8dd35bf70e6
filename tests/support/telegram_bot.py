"""The bot's Telegram application, polling a FakeTelegram, for end-to-end tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from telegram.ext import Application

from bot.app import Services
from handlers.telegram import build_telegram_application, start_polling, stop_application
from tests.support.fake_telegram import FakeTelegram

App = Application[Any, Any, Any, Any, Any, Any]


@contextlib.asynccontextmanager
async def polling_bot(fake: FakeTelegram, services: Services) -> AsyncIterator[App]:
    """The application `serve` builds, receiving from and sending to `fake`."""
    application = build_telegram_application(
        fake.token,
        services.engine,
        api_base=f"{fake.api_url}/bot",
        file_api_base=f"{fake.api_url}/file/bot",
    )
    await start_polling(application, poll_timeout=1)
    try:
        yield application
    finally:
        await stop_application(application)


class Person:
    """One Telegram user in a private chat: says, taps, sends; each returns the bot's next
    message (as sent)."""

    def __init__(self, fake: FakeTelegram, chat_id: int, language_code: str = "en") -> None:
        self.fake = fake
        self.chat_id = chat_id
        self.language_code = language_code
        self.last: dict[str, Any] = {}

    async def _reply(self) -> dict[str, Any]:
        self.last = await self.fake.next_reply(self.chat_id, timeout=10)
        return self.last

    async def say(self, text: str) -> dict[str, Any]:
        self.fake.send_text(self.chat_id, text, language_code=self.language_code)
        return await self._reply()

    async def tap(self, key: str) -> dict[str, Any]:
        self.fake.press_button(
            self.chat_id, self.last["message_id"], key, language_code=self.language_code
        )
        return await self._reply()

    async def photo(self, content: bytes) -> dict[str, Any]:
        self.fake.send_photo(self.chat_id, content, language_code=self.language_code)
        return await self._reply()

    async def document(self, content: bytes, name: str, mime: str) -> dict[str, Any]:
        self.fake.send_document(self.chat_id, content, name, mime, language_code=self.language_code)
        return await self._reply()

    async def location(self, lat: float, lon: float) -> dict[str, Any]:
        self.fake.send_location(self.chat_id, lat, lon, language_code=self.language_code)
        return await self._reply()

    def buttons(self) -> list[str]:
        markup = self.last.get("reply_markup") or {}
        return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]
