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
from bot.metrics import observe_lookup
from bot.request_context import trace_id
from bot.storage.admission_repository import AdmissionRepository
from bot.storage.database import Database, Unit
from registry_client import RegistryClient, RegistryError

log = logging.getLogger(__name__)

# How long an address that matched a NIK stays exempt from that NIK's lock.
MATCH_MEMORY = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class Admission:
    """The units a look-up took, to give back what the outcome does not spend."""

    taken: tuple[Counter, ...]
    nik_failure: Counter
    nik_hash: str
    address_hash: str

    def __repr__(self) -> str:
        return f"Admission({len(self.taken)} units)"


class StatusService:
    def __init__(
        self,
        registry: RegistryClient,
        database: Database,
        keys: KeyRing,
        *,
        limits: LookupLimits,
        clock: Callable[[], datetime],
        facilitator_limits: LookupLimits | None = None,
        shard_picker: Callable[[], int] | None = None,
    ) -> None:
        self._registry = registry
        self._database = database
        self._keys = keys
        self._limits = limits
        # Facilitators check for hundreds of households: higher per-address limits. The
        # per-NIK and service-wide limits are the same for everyone.
        self._facilitator_limits = facilitator_limits or limits
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
        """Admission in a transaction of its own, then the look-up."""
        async with self._database.unit() as unit:
            admission = await self.admit(unit, channel, address_hash, nik)
        if isinstance(admission, Throttled):
            return admission
        return await self.look_up(admission, channel=channel, nik=nik, name=name, budget_s=budget_s)

    async def admit(
        self, work: Unit, channel: str, address_hash: str, nik: str, *, facilitator: bool = False
    ) -> Admission | Throttled:
        """Take a unit of every limit, in the caller's transaction (the dialog step's).

        Limits per address (one account trying many NIKs), per NIK for names that did not
        match (many accounts guessing one NIK's name) and for the whole service. One
        statement takes them all; if any was full, what was taken goes back.
        """
        now = self._clock()
        nik_hash = self._keys.nik_hash(nik)
        nik_unit = nik_counter(self._limits, nik_hash, now)
        per_address = self._facilitator_limits if facilitator else self._limits
        ordered = [
            *(
                (unit, ThrottleReason.ADDRESS)
                for unit in address_counters(per_address, address_hash, now)
            ),
            (nik_unit, ThrottleReason.NIK),
            (global_counter(self._limits, self._shard(), now), ThrottleReason.BUSY),
        ]
        counters = AdmissionRepository(work)
        taken = await counters.take_all([u for u, _ in ordered], owner=(nik_hash, address_hash))
        admitted = [unit for unit, _ in ordered if (unit.scope, unit.key) in taken]
        for unit, reason in ordered:
            if (unit.scope, unit.key) not in taken:
                await counters.give_back_all(admitted)
                log.info(
                    "status look-up on %s throttled (%s) for %s",
                    channel,
                    reason.value,
                    trace_id(address_hash),
                )
                throttled = Throttled(reason, seconds_until(unit.window_end, now))
                observe_lookup(throttled)
                return throttled
        return Admission(tuple(admitted), nik_unit, nik_hash, address_hash)

    async def look_up(
        self,
        admission: Admission,
        *,
        channel: str,
        nik: str,
        name: str,
        budget_s: float | None = None,
    ) -> LookupOutcome:
        """Ask the registry; then settle the admission (outside any dialog transaction)."""
        try:
            report = await self._registry.look_up_status(nik, name, channel, deadline=budget_s)
        except RegistryError as error:
            log.warning("status look-up failed on %s: %s", channel, type(error).__name__)
            await self._settle(admission.taken)  # no answer: the person keeps their tries
            observe_lookup(LookupFailure.UNAVAILABLE)
            return LookupFailure.UNAVAILABLE
        if report is None:
            observe_lookup(LookupFailure.NOT_FOUND)
            return LookupFailure.NOT_FOUND  # the NIK's failure unit stays taken
        # A match is no failure: its NIK unit goes back, and the address is remembered as
        # one that may check this NIK even while strangers' wrong names have locked it.
        await self._settle(
            (admission.nik_failure,), match=(admission.nik_hash, admission.address_hash)
        )
        observe_lookup(report)
        return report

    async def _settle(
        self, given_back: tuple[Counter, ...], match: tuple[str, str] | None = None
    ) -> None:
        # Each statement stands alone (no BEGIN/COMMIT round trips): a give-back and a
        # match need no atomicity between them.
        async with self._database.autocommit() as unit:
            counters = AdmissionRepository(unit)
            await counters.give_back_all(given_back)
            if match is not None:
                await counters.record_match(*match, self._clock())
