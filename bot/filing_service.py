"""Filings as a domain service: abuse limits, then the filing and its outbox row, in the
caller's transaction (the one that saves the dialog step confirming the filing)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.crypto import KeyRing
from bot.dialogs.model import TicketMissing
from bot.filings import (
    QUEUED,
    AreaRule,
    Filer,
    FilingAccepted,
    FilingDraft,
    FilingOutcome,
    FilingRefusal,
    FilingRefused,
    TicketHistory,
    TicketList,
    new_ticket_number,
    same_area,
    submission_document,
)
from bot.metrics import observe_filing
from bot.storage.filing_repository import FilingRepository
from bot.storage.models import Filing, FilingPhotoRef

DAY = timedelta(days=1)
TICKETS_LISTED = 5


def filing_seal_context(filing_id: str) -> str:
    return f"filing:{filing_id}"


def filer_seal_context(filing_id: str) -> str:
    return f"filing-filer:{filing_id}"


class FilingService:
    def __init__(
        self,
        keys: KeyRing,
        *,
        filings_per_day: int,
        area_rule: AreaRule,
        clock: Callable[[], datetime],
        facilitator_filings_per_day: int | None = None,
    ) -> None:
        self._keys = keys
        self._per_day = filings_per_day
        # A facilitator files for the households of a whole kecamatan.
        self._facilitator_per_day = facilitator_filings_per_day or filings_per_day
        self._area_rule = area_rule
        self._clock = clock

    def subject_hash(self, draft: FilingDraft) -> str:
        """The subject's pseudonym: its NIK's keyed hash, or that of the name and address."""
        if draft.subject_nik is not None:
            return self._keys.nik_hash(draft.subject_nik)
        described = " ".join(f"{draft.subject_name} {draft.fields.get('address', '')}".split())
        return self._keys.keyed_hash("subject-description", described.casefold())

    async def submit(
        self, session: AsyncSession, filer: Filer, draft: FilingDraft
    ) -> FilingOutcome:
        now = self._clock()
        filings = FilingRepository(session)
        subject_hash = self.subject_hash(draft)
        # The conversation row of this filer is locked by the caller's transaction, so
        # these checks and the insert below cannot interleave with another of theirs.
        today = await filings.count_by_filer_since(filer.channel, filer.address_hash, now - DAY)
        if today >= (self._facilitator_per_day if filer.facilitator_id else self._per_day):
            return FilingRefused(FilingRefusal.TOO_MANY_TODAY)
        open_ticket = await filings.open_ticket(
            filer.channel, filer.address_hash, draft.kind, subject_hash
        )
        if open_ticket is not None:
            return FilingRefused(FilingRefusal.ALREADY_OPEN, open_ticket)
        if (
            draft.filer_kecamatan is not None
            and draft.subject_nik is not None
            and not same_area(self._area_rule, draft.filer_kecamatan, draft.subject_nik)
        ):
            return FilingRefused(FilingRefusal.OUTSIDE_AREA)
        filing_id = str(uuid.uuid4())
        ticket = new_ticket_number()
        filer_ref = self._keys.keyed_hash("registry-filer", f"{filer.channel}:{filer.address_hash}")
        document = submission_document(filing_id, draft, filer, filer_ref, now)
        filing = Filing(
            id=filing_id,
            ticket=ticket,
            kind=draft.kind,
            subject_hash=subject_hash,
            sealed_document=self._keys.seal(
                json.dumps(document).encode(), context=filing_seal_context(filing_id)
            ),
            language=draft.language,
            filer_channel=filer.channel,
            filer_hash=filer.address_hash,
            sealed_filer_address=self._keys.seal(
                filer.address.encode(), context=filer_seal_context(filing_id)
            ),
            facilitator_id=filer.facilitator_id,
            stage=QUEUED,
            stage_reason=None,
            registry_ticket=None,
            created_at=now,
            updated_at=now,
        )
        photos = [
            FilingPhotoRef(filing_id=filing_id, position=n, sha256=p.sha256, role=p.role)
            for n, p in enumerate(draft.photos)
        ]
        filings.add(filing, photos, now)
        observe_filing(draft.kind)
        return FilingAccepted(ticket)

    async def tickets(self, session: AsyncSession, filer: Filer) -> TicketList:
        listed = await FilingRepository(session).tickets_of(
            filer.channel, filer.address_hash, TICKETS_LISTED
        )
        return TicketList(tuple(listed))

    async def ticket(
        self, session: AsyncSession, filer: Filer, ticket: str
    ) -> TicketHistory | TicketMissing:
        history = await FilingRepository(session).history(filer.channel, filer.address_hash, ticket)
        return TicketMissing(ticket) if history is None else history
