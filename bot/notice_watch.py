"""Starts the quarterly run when the registry publishes a quarter (in `serve`, and as
`bansos-bot notices watch`). Running a quarter again is harmless: it continues."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bot.notice_run import NoticeRun
from bot.storage.database import Database
from bot.storage.notice_repository import PENDING, NoticeRepository, NoticeRunRepository
from registry_client import RegistryClient, RegistryError

log = logging.getLogger(__name__)


async def watch_quarters(
    database: Database,
    registry: RegistryClient,
    new_run: Callable[[], NoticeRun],
    *,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Poll the registry's quarters; run the newest until it has nothing left to send."""
    while not stop.is_set():
        try:
            quarters = await registry.quarters()
            if quarters and await unfinished(database, quarters[-1].quarter):
                summary = await new_run().run(quarters[-1].quarter)
                log.info("notices: %s", "; ".join(summary.lines()))
        except RegistryError as problem:
            log.warning("notices: registry unavailable (%s)", type(problem).__name__)
        except Exception:
            log.exception("notices: the run failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def unfinished(database: Database, quarter: str) -> bool:
    """True until the quarter's feed is ingested and no notice waits to be sent."""
    async with database.transaction() as session:
        run = await NoticeRunRepository(session).get(quarter)
        if run is None or not run.ingested:
            return True
        return (await NoticeRepository(session).counts(quarter)).get(PENDING, 0) > 0
