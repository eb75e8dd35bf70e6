"""Updates run concurrently across chats and in order within one chat."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from telegram import Chat, Message, Update

from handlers.telegram_ordering import ChatOrderedUpdateProcessor


def update_from(chat_id: int, update_id: int) -> Update:
    chat = Chat(chat_id, Chat.PRIVATE)
    return Update(update_id, message=Message(update_id, datetime.now(UTC), chat, text="x"))


async def test_one_chat_in_order_other_chats_meanwhile() -> None:
    processor = ChatOrderedUpdateProcessor(16)
    events: list[str] = []
    release_slow = asyncio.Event()

    async def work(name: str, wait: asyncio.Event | None = None) -> None:
        events.append(f"start {name}")
        if wait is not None:
            await wait.wait()
        events.append(f"end {name}")

    async with processor:
        slow = asyncio.create_task(
            processor.process_update(update_from(1, 1), work("a1", release_slow))
        )
        await asyncio.sleep(0)
        same_chat = asyncio.create_task(processor.process_update(update_from(1, 2), work("a2")))
        other_chat = asyncio.create_task(processor.process_update(update_from(2, 3), work("b1")))
        await other_chat
        assert events == ["start a1", "start b1", "end b1"]  # chat 2 did not wait for chat 1
        release_slow.set()
        await asyncio.gather(slow, same_chat)
    assert events[3:] == ["end a1", "start a2", "end a2"]
    assert processor.busy_chats == 0  # idle chats are forgotten
