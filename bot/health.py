"""What readiness reports: is the database answering, is the registry, is Telegram running?

Liveness needs none of this (`/healthz` answers as long as the process serves HTTP).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.storage.database import Database
from registry_client import RegistryClient, RegistryError


class TelegramState(StrEnum):
    OFF = "off"  # no token: the service runs on USSD alone
    UP = "up"
    DOWN = "down"


class TelegramStatus:
    """Whether the Telegram receiver runs; set by whoever runs it, read by readiness."""

    def __init__(self) -> None:
        self._state = TelegramState.OFF

    @property
    def state(self) -> TelegramState:
        return self._state

    def set_up(self) -> None:
        self._state = TelegramState.UP

    def set_down(self) -> None:
        self._state = TelegramState.DOWN


@dataclass(frozen=True, slots=True)
class HealthReport:
    database: bool
    registry: bool
    telegram: TelegramState

    @property
    def ok(self) -> bool:
        """Ready for USSD: Telegram being down is reported, but does not stop USSD."""
        return self.database and self.registry


class Health:
    """Probes the database and the registry, each within `timeout_s`; the answer is kept
    `cache_s` seconds and shared by concurrent callers, so a storm of probes reaches
    neither more than once per period."""

    def __init__(
        self,
        database: Database,
        registry: RegistryClient,
        telegram: TelegramStatus | None = None,
        *,
        timeout_s: float = 2.0,
        cache_s: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._registry = registry
        self._telegram = telegram or TelegramStatus()
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._probed: tuple[bool, bool] | None = None
        self._probed_at = 0.0

    async def check(self) -> HealthReport:
        async with self._lock:
            if self._probed is None or self._clock() - self._probed_at >= self._cache_s:
                self._probed = await asyncio.gather(self._database_up(), self._registry_up())
                self._probed_at = self._clock()
            database, registry = self._probed
        return HealthReport(database=database, registry=registry, telegram=self._telegram.state)

    async def _database_up(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._database.ping()
        except TimeoutError:
            return False

    async def _registry_up(self) -> bool:
        try:
            await self._registry.ping(timeout=self._timeout_s)
        except RegistryError:
            return False
        return True
