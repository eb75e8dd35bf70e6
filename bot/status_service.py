"""The status check as a domain service: rate limits, then the registry, then an outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.crypto import KeyRing
from bot.lookup import LookupFailure, LookupOutcome
from bot.storage.database import Database
from bot.storage.repositories import LookupAttemptRepository
from registry_client import RegistryClient, RegistryError

log = logging.getLogger(__name__)

RATE_WINDOW = timedelta(hours=1)


class StatusService:
    def __init__(
        self,
        registry: RegistryClient,
        database: Database,
        keys: KeyRing,
        *,
        lookups_per_hour: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._registry = registry
        self._database = database
        self._keys = keys
        self._limit = lookups_per_hour
        self._clock = clock

    async def check(
        self,
        *,
        channel: str,
        address_hash: str,
        nik: str,
        name: str,
        budget_s: float | None = None,
    ) -> LookupOutcome:
        """Look a household up, unless this address or this NIK has asked too often.

        Both limits matter: one account trying many NIKs, and many accounts trying
        names for one NIK, are both ways to learn who is in the registry.
        """
        if not await self._admit(address_hash, self._keys.nik_hash(nik)):
            log.info("status look-up throttled on %s", channel)
            return LookupFailure.THROTTLED
        try:
            report = await self._registry.look_up_status(nik, name, channel, deadline=budget_s)
        except RegistryError as error:
            log.warning("status look-up failed on %s: %s", channel, type(error).__name__)
            return LookupFailure.UNAVAILABLE
        return LookupFailure.NOT_FOUND if report is None else report

    async def _admit(self, address_hash: str, nik_hash: str) -> bool:
        now = self._clock()
        since = now - RATE_WINDOW
        async with self._database.transaction() as session:
            attempts = LookupAttemptRepository(session)
            by_address = await attempts.count_since("address", address_hash, since)
            by_nik = await attempts.count_since("nik", nik_hash, since)
            if by_address >= self._limit or by_nik >= self._limit:
                return False
            attempts.record("address", address_hash, now)
            attempts.record("nik", nik_hash, now)
            return True
