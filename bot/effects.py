"""Carries out what dialog steps ask for (the closed set of effects in dialogs/model.py)
by handing each to its domain service. Slow effects run between transactions; the
others run inside the transaction that saves the step asking for them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from bot.dialogs.model import (
    ActivateFacilitator,
    Effect,
    EraseMyData,
    ListHouseholds,
    ListSubscriptions,
    ListTickets,
    Outcome,
    PhotoRefused,
    ReceivePhoto,
    ShowMyData,
    ShowTicket,
    StatusLookup,
    SubmitFiling,
    Subscribe,
    Unsubscribe,
)
from bot.facilitator_service import FacilitatorService
from bot.facilitators import Action, Activated, HouseholdPage
from bot.filing_service import FilingService
from bot.filings import Filer, FilingAccepted
from bot.lookup import LookupFailure, Throttled
from bot.personal_data_service import PersonalDataService
from bot.photo_intake import UNAVAILABLE, FileSource, PhotoIntake
from bot.status_service import Admission, StatusService
from bot.storage.database import Unit
from bot.subscription_service import SubscriptionService
from bot.subscriptions import Subscribed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a slow effect's preparation in the step's transaction gave: an outcome that
    settles it at once (refused by a limit), or a ticket its slow part carries on with."""

    outcome: Outcome | None = None
    ticket: Admission | None = None


class EffectRunner:
    def __init__(
        self,
        status: StatusService,
        photos: PhotoIntake,
        filings: FilingService,
        subscriptions: SubscriptionService,
        personal_data: PersonalDataService,
        facilitators: FacilitatorService,
    ) -> None:
        self.status = status
        self.photos = photos
        self.filings = filings
        self.subscriptions = subscriptions
        self.personal_data = personal_data
        self.facilitators = facilitators

    async def run_slow(
        self,
        effect: Effect,
        *,
        channel: str,
        files: FileSource | None,
        lookup_budget_s: float | None,
        prepared: Prepared | None = None,
    ) -> Outcome:
        """The outcome; an unexpected failure becomes the effect's "unavailable" outcome, so
        the person is never left waiting on a step nothing will resume."""
        ticket = None if prepared is None else prepared.ticket
        try:
            return await self._run_slow(effect, channel, files, lookup_budget_s, ticket)
        except Exception:
            log.exception("%s failed", type(effect).__name__)
            if isinstance(effect, ReceivePhoto):
                return PhotoRefused(UNAVAILABLE)
            return LookupFailure.UNAVAILABLE

    async def _run_slow(
        self,
        effect: Effect,
        channel: str,
        files: FileSource | None,
        lookup_budget_s: float | None,
        ticket: Admission | None,
    ) -> Outcome:
        if isinstance(effect, StatusLookup):
            # Admitted by the limits in the step's transaction (prepare_in): never without.
            assert ticket is not None, "a status look-up runs only once admitted"
            return await self.status.look_up(
                ticket, channel=channel, nik=effect.nik, name=effect.name, budget_s=lookup_budget_s
            )
        if isinstance(effect, ReceivePhoto):
            if files is None:  # a channel without files cannot have sent one
                return PhotoRefused(UNAVAILABLE)
            return await self.photos.receive(files, effect.attachment)
        raise TypeError(f"{type(effect).__name__} runs inside a transaction")

    async def prepare_in(self, unit: Unit, effect: Effect, filer: Filer) -> Prepared:
        """The part of a slow effect that belongs in the step's transaction: a status
        look-up is admitted by the limits there, in the same round trips as the step."""
        if isinstance(effect, StatusLookup):
            facilitator = filer.facilitator_id
            admission = await self.status.admit(
                unit, filer.channel, filer.address_hash, effect.nik, facilitator=bool(facilitator)
            )
            if isinstance(admission, Throttled):
                return Prepared(outcome=admission)
            if facilitator is not None:
                await self.facilitators.note(
                    await unit.session(), facilitator, Action.LOOKUP, effect.nik
                )
            return Prepared(ticket=admission)
        return Prepared()

    async def run_in(self, unit: Unit, effect: Effect, filer: Filer) -> Outcome:
        if isinstance(effect, ActivateFacilitator):
            linked = await self.facilitators.activate_in_chat(unit, effect.code, filer.address_hash)
            if isinstance(linked, Activated):
                # Their households' notices follow them from an earlier chat to this one.
                now_theirs = replace(filer, facilitator_id=linked.facilitator_id)
                await self.subscriptions.follow_facilitator(await unit.session(), now_theirs)
            return linked
        session = await unit.session()
        facilitator = filer.facilitator_id
        if isinstance(effect, SubmitFiling):
            filed = await self.filings.submit(session, filer, effect.draft)
            if facilitator is not None and isinstance(filed, FilingAccepted):
                subject = effect.draft.subject_nik
                await self.facilitators.note(session, facilitator, Action.FILING, subject)
            return filed
        if isinstance(effect, ListHouseholds):
            if facilitator is None:  # the dialogs offer the list to facilitators only
                return HouseholdPage((), 0, 0, 1)
            return await self.facilitators.household_page(session, facilitator, effect.page)
        if isinstance(effect, ListTickets):
            return await self.filings.tickets(session, filer)
        if isinstance(effect, ShowTicket):
            return await self.filings.ticket(session, filer, effect.ticket)
        if isinstance(effect, Subscribe):
            subscribed = await self.subscriptions.subscribe(session, filer, effect.nik)
            if facilitator is not None and isinstance(subscribed, Subscribed):
                await self.facilitators.note(session, facilitator, Action.SUBSCRIPTION, effect.nik)
            return subscribed
        if isinstance(effect, ListSubscriptions):
            return await self.subscriptions.list(session, filer)
        if isinstance(effect, Unsubscribe):
            return await self.subscriptions.unsubscribe(session, filer, effect.subscription_id)
        if isinstance(effect, ShowMyData):
            return await self.personal_data.held(session, filer)
        if isinstance(effect, EraseMyData):
            return await self.personal_data.erase(session, filer, effect.draft_photos)
        raise TypeError(f"{type(effect).__name__} does not run inside a transaction")
