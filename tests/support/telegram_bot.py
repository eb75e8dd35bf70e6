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
