"""Process Telegram updates concurrently across chats but in order within each chat.

A registry look-up can take seconds; one person's wait must not hold up everyone else,
yet two quick messages from the same person must be handled in the order sent. An update
first waits for its chat's turn, holding nothing, and only then takes one of the shared
slots: a chat with many messages queued occupies one slot, not all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


class ChatOrderedUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._chat_locks: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}

    @property
    def busy_chats(self) -> int:
        """How many chats have an update in hand or waiting."""
        return len(self._chat_locks)

    # PTB marks `process_update` final for type checkers only; overriding it is the one way
    # to wait for the chat's turn before the base class takes a slot.
    async def process_update(  # type: ignore[misc]
        self, update: object, coroutine: Awaitable[Any]
    ) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await super().process_update(update, coroutine)
            return
        async with self._turn_of(chat.id):
            await super().process_update(update, coroutine)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Runs with the chat's turn and a slot both held."""
        await coroutine

    @contextlib.asynccontextmanager
    async def _turn_of(self, chat_id: int) -> AsyncIterator[None]:
        # asyncio.Lock wakes its waiters first come, first served: the chat's order holds.
        lock = self._chat_locks.setdefault(chat_id, asyncio.Lock())
        self._waiting[chat_id] = self._waiting.get(chat_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[chat_id] -= 1
            if self._waiting[chat_id] == 0:  # forget idle chats: memory stays bounded
                del self._waiting[chat_id]
                del self._chat_locks[chat_id]

    async def initialize(self) -> None:
        """Nothing to allocate."""

    async def shutdown(self) -> None:
        """Nothing to free."""
