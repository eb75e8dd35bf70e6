"""Follows the registry's feed of ticket stages (`GET /v1/participation/updates`) from a
stored cursor, records each move in the ticket's history and tells the filer.

Several instances may run: each reads a page, then applies it only if the stored cursor
has not moved meanwhile (the cursor row is locked while applying). Applying twice is
harmless too: a stage already recorded is not recorded again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from bot.crypto import KeyRing
from bot.filer_messages import tell_filer
from bot.storage.database import Database
from bot.storage.filing_repository import FilingRepository
from bot.storage.outbound_repository import CursorRepository
from registry_client import RegistryClient, RegistryError

log = logging.getLogger(__name__)

CURSOR_NAME = "participation-updates"


class TicketFollower:
    def __init__(
        self,
        database: Database,
        keys: KeyRing,
        registry: RegistryClient,
        *,
        clock: Callable[[], datetime],
        page_size: int = 500,
    ) -> None:
        self._database = database
        self._keys = keys
        self._registry = registry
        self._clock = clock
        self._page_size = page_size

    async def follow_once(self) -> int:
        """Read one page from the stored cursor and apply it; return how many items."""
        async with self._database.transaction() as session:
            cursor = await CursorRepository(session).read(CURSOR_NAME)
        page = await self._registry.ticket_updates(cursor, limit=self._page_size)
        now = self._clock()
        moved = 0
        async with self._database.transaction() as session:
            stored = await CursorRepository(session).lock(CURSOR_NAME, now)
            if stored.cursor != cursor:
                return 0  # another instance applied this page already
            filings = FilingRepository(session)
            for item in page.items:
                filing = await filings.get(item.submission_id)
                if filing is None:
                    continue  # filed through another channel of the registry
                if filings.move(
                    filing, item.stage, item.reason_code, now, registry_ticket=item.ticket
                ):
                    tell_filer(self._keys, session, filing, now)
                    moved += 1
            if page.next_cursor is not None:
                stored.cursor = page.next_cursor
            stored.updated_at = now
        if moved:
            log.info("ticket updates: %d moved", moved)
        return len(page.items)

    async def run(self, stop: asyncio.Event, *, interval_s: float = 5.0) -> None:
        """Follow until `stop`; a full page is followed by the next at once."""
        while not stop.is_set():
            try:
                read = await self.follow_once()
            except RegistryError as problem:
                log.warning("ticket updates unavailable: %s", type(problem).__name__)
                read = 0
            except Exception:
                log.exception("following ticket updates failed; trying again later")
                read = 0
            if read < self._page_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
