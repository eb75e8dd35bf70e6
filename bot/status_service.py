"""The status check as a domain service: admission by the limits, then the registry,
then an outcome; what the registry never answered is given back."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.admission import (
    GLOBAL_SHARDS,
    Counter,
    LookupLimits,
    address_counters,
    global_counter,
    nik_counter,
    seconds_until,
)
from bot.crypto import KeyRing
from bot.lookup import LookupFailure, LookupOutcome, Throttled, ThrottleReason
from bot.request_context import trace_id
from bot.storage.admission_repository import AdmissionRepository
from bot.storage.database import Database
from registry_client import RegistryClient, RegistryError

log = logging.getLogger(__name__)

# How long an address that matched a NIK stays exempt from that NIK's lock.
MATCH_MEMORY = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class Admission:
    taken: tuple[Counter, ...]
    nik_failure: Counter | None  # None: an owner's address, not counted against the NIK


class _Refused(Exception):
    """Raised inside the admission transaction so every unit taken so far rolls back."""

    def __init__(self, refusal: Throttled) -> None:
        self.refusal = refusal


class StatusService:
    def __init__(
        self,
        registry: RegistryClient,
        database: Database,
        keys: KeyRing,
        *,
        limits: LookupLimits,
        clock: Callable[[], datetime],
        shard_picker: Callable[[], int] | None = None,
    ) -> None:
        self._registry = registry
        self._database = database
        self._keys = keys
        self._limits = limits
        self._clock = clock
        # Any shard will do; a random one spreads concurrent look-ups over the rows.
        self._shard = shard_picker or (lambda: random.randrange(GLOBAL_SHARDS))  # noqa: S311

    async def check(
        self,
        *,
        channel: str,
        address_hash: str,
        nik: str,
        name: str,
        budget_s: float | None = None,
    ) -> LookupOutcome:
        """Look a household up, unless a limit says no.

        Limits per address (one account trying many NIKs), per NIK for names that did not
        match (many accounts guessing one NIK's name) and for the whole service.
        """
        nik_hash = self._keys.nik_hash(nik)
        admission = await self._admit(address_hash, nik_hash)
        if isinstance(admission, Throttled):
            log.info(
                "status look-up on %s throttled (%s) for %s",
                channel,
                admission.reason.value,
                trace_id(address_hash),
            )
            return admission
        try:
            report = await self._registry.look_up_status(nik, name, channel, deadline=budget_s)
        except RegistryError as error:
            log.warning("status look-up failed on %s: %s", channel, type(error).__name__)
            await self._settle(admission.taken)  # no answer: the person keeps their tries
            return LookupFailure.UNAVAILABLE
        if report is None:
            return LookupFailure.NOT_FOUND  # the NIK's failure unit stays taken
        given_back = (admission.nik_failure,) if admission.nik_failure is not None else ()
        await self._settle(given_back, match=(nik_hash, address_hash))
        return report

    async def _admit(self, address_hash: str, nik_hash: str) -> Admission | Throttled:
        now = self._clock()
        try:
            async with self._database.transaction() as session:
                counters = AdmissionRepository(session)
                taken: list[Counter] = []
                for unit in address_counters(self._limits, address_hash, now):
                    await self._take(counters, unit, ThrottleReason.ADDRESS, now, taken)
                nik_failure = None
                if not await counters.matched_before(nik_hash, address_hash):
                    nik_failure = nik_counter(self._limits, nik_hash, now)
                    await self._take(counters, nik_failure, ThrottleReason.NIK, now, taken)
                ceiling = global_counter(self._limits, self._shard(), now)
                await self._take(counters, ceiling, ThrottleReason.BUSY, now, taken)
        except _Refused as refused:
            return refused.refusal
        return Admission(tuple(taken), nik_failure)

    @staticmethod
    async def _take(
        counters: AdmissionRepository,
        unit: Counter,
        reason: ThrottleReason,
        now: datetime,
        taken: list[Counter],
    ) -> None:
        if not await counters.take(unit):
            raise _Refused(Throttled(reason, seconds_until(unit.window_end, now)))
        taken.append(unit)

    async def _settle(
        self, given_back: tuple[Counter, ...], match: tuple[str, str] | None = None
    ) -> None:
        async with self._database.transaction() as session:
            counters = AdmissionRepository(session)
            for unit in given_back:
                await counters.give_back(unit)
            if match is not None:
                await counters.record_match(*match, self._clock())
