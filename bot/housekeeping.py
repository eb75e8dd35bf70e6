"""Periodic deletion of what is no longer needed: old look-up attempts (they only count
towards a one-hour limit) and conversations of people who never gave consent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.status_service import RATE_WINDOW
from bot.storage.database import Database
from bot.storage.repositories import ConversationRepository, LookupAttemptRepository

log = logging.getLogger(__name__)

UNCONSENTED_RETENTION = timedelta(days=1)
INTERVAL_S = 600.0


@dataclass(frozen=True, slots=True)
class Swept:
    lookup_attempts: int
    conversations: int


async def sweep(database: Database, now: datetime) -> Swept:
    async with database.transaction() as session:
        attempts = await LookupAttemptRepository(session).forget_before(now - RATE_WINDOW)
        conversations = await ConversationRepository(session).forget_unconsented_idle_since(
            now - UNCONSENTED_RETENTION
        )
    return Swept(attempts, conversations)


async def sweep_forever(
    database: Database, clock: Callable[[], datetime], *, interval_s: float = INTERVAL_S
) -> None:
    """Sweep now and then every `interval_s`; safe to run in several instances at once."""
    while True:
        try:
            swept = await sweep(database, clock())
            log.info("housekeeping removed %s", swept)
        except Exception:
            log.exception("housekeeping failed; trying again later")
        await asyncio.sleep(interval_s)
