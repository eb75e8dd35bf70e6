"""`bansos-bot notices run --quarter Q` and `bansos-bot notices watch`: the quarterly run
from the command line, with a progress bar and a summary, and the scheduler that starts
a run when the registry publishes a new quarter (also inside `serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
from tqdm import tqdm

from bot.app import build_services
from bot.notice_run import RunSummary
from bot.outbound import OutboundPort
from bot.settings import Settings
from handlers.telegram import CHANNEL as TELEGRAM_CHANNEL
from handlers.telegram_broadcast import BotApiBroadcast

SEND_CONNECTIONS = 64


class BarProgress:
    """tqdm bars: changes read while ingesting, then notices handled while sending."""

    def __init__(self) -> None:
        self._bar: tqdm[None] | None = None

    def stage(self, name: str, total: int | None) -> None:
        self.close()
        unit = "changes" if name == "ingest" else "notices"
        self._bar = tqdm(total=total, desc=name, unit=f" {unit}", smoothing=0.1)

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.asynccontextmanager
async def push_ports(settings: Settings) -> AsyncIterator[Mapping[str, OutboundPort]]:
    """The channels this process can push to: Telegram when a token is configured."""
    if settings.telegram_bot_token is None:
        yield {}
        return
    connector = aiohttp.TCPConnector(limit=SEND_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        port = BotApiBroadcast(
            session,
            settings.telegram_bot_api_base,
            settings.telegram_bot_token,
            paid_broadcast=settings.notice_paid_broadcast,
        )
        yield {TELEGRAM_CHANNEL: port}


async def run_quarter(settings: Settings, quarter: str) -> RunSummary:
    assert settings.registry_url is not None
    services = await build_services(settings, registry_url=settings.registry_url)
    progress = BarProgress()
    try:
        async with push_ports(settings) as ports:
            run = services.notice_run(ports)
            print(f"bansos-bot notices: quarter {quarter}; at most {run.window} messages may "
                  "repeat if this run is killed while sending", flush=True)  # fmt: skip
            return await run.run(quarter, progress)
    finally:
        progress.close()
        await services.close()


async def watch(settings: Settings) -> None:
    assert settings.registry_url is not None
    services = await build_services(settings, registry_url=settings.registry_url)
    stop = asyncio.Event()
    _stop_on_signals(stop.set)
    try:
        async with push_ports(settings) as ports:
            await services.watch_quarters(ports, stop)
    finally:
        await services.close()


def _stop_on_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
