"""Shows a person what the service holds about them, and erases it on request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bot.blob_store import BlobStore
from bot.filings import Filer
from bot.personal_data import Erased, HeldData
from bot.storage.filing_repository import FilingRepository, filing_summary
from bot.storage.models import Conversation
from bot.storage.personal_data_repository import PersonalDataRepository
from bot.subscription_service import SubscriptionService


class PersonalDataService:
    def __init__(self, blobs: BlobStore, subscriptions: SubscriptionService) -> None:
        self._blobs = blobs
        self._subscriptions = subscriptions

    async def held(self, session: AsyncSession, who: Filer) -> HeldData:
        stored = PersonalDataRepository(session)
        conversation = await session.get(Conversation, (who.channel, who.address_hash))
        filings = await stored.filings_of(who.channel, who.address_hash)
        listed = await self._subscriptions.list(session, who)
        return HeldData(
            consented_at=None if conversation is None else conversation.consented_at,
            language="" if conversation is None else conversation.language,
            tickets=tuple(filing_summary(row) for row in filings),
            photos=len(await stored.photo_digests([row.id for row in filings])),
            subscriptions=tuple(masked for _, masked in listed.items),
            messages_waiting=await stored.messages_waiting(who.channel, who.address_hash),
            matched_households=await stored.matches_of(who.address_hash),
        )

    async def erase(
        self, session: AsyncSession, who: Filer, draft_photos: Sequence[str] = ()
    ) -> Erased:
        """Everything under this address but the conversation row, which the engine
        deletes with the step that asked for this. Filings not yet delivered are
        withdrawn with the rest: the confirmation said so."""
        stored = PersonalDataRepository(session)
        filing_ids = [row.id for row in await stored.filings_of(who.channel, who.address_hash)]
        digests = set(await stored.photo_digests(filing_ids)) | set(draft_photos)
        await stored.erase_filings(filing_ids)
        subscriptions = await stored.erase_subscriptions(who.channel, who.address_hash)
        messages = await stored.erase_messages(who.channel, who.address_hash)
        await stored.erase_matches(who.address_hash)
        # Files last, once every row is gone: a photo another filing shares stays.
        orphans = digests - await FilingRepository(session).referenced_photos(digests)
        for sha256 in sorted(orphans):
            await asyncio.to_thread(self._blobs.delete, sha256)
        return Erased(len(filing_ids), len(orphans), subscriptions, messages)
