"""Updates run concurrently across chats and in order within one chat."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from telegram import Chat, Message, Update

from handlers.telegram import MAX_CONCURRENT_UPDATES
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


async def test_a_chat_with_many_queued_updates_holds_one_slot_and_others_go_first() -> None:
    processor = ChatOrderedUpdateProcessor(MAX_CONCURRENT_UPDATES)
    queued = MAX_CONCURRENT_UPDATES + 36
    release = asyncio.Event()
    handled: list[int] = []

    async def busy_chat_work(n: int) -> None:
        await release.wait()
        handled.append(n)

    async def other_chat_work() -> None:
        handled.append(-1)

    async with processor:
        busy = [
            asyncio.create_task(processor.process_update(update_from(1, n), busy_chat_work(n)))
            for n in range(queued)
        ]
        for _ in range(3):
            await asyncio.sleep(0)  # all of them taken in and waiting
        assert processor.current_concurrent_updates == 1  # the busy chat holds one slot
        other = processor.process_update(update_from(2, 1000), other_chat_work())
        await asyncio.wait_for(other, timeout=1)  # answered while the busy chat still waits
        assert handled == [-1]
        release.set()
        await asyncio.gather(*busy)
    assert handled[1:] == list(range(queued))  # the busy chat's own order held
    assert processor.busy_chats == 0


async def test_updates_without_a_chat_share_the_slots_without_ordering() -> None:
    processor = ChatOrderedUpdateProcessor(2)
    running = 0
    peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    async with processor:
        await asyncio.gather(*(processor.process_update(object(), work()) for _ in range(6)))
    assert peak == 2  # at most the slots, and more than one at a time
