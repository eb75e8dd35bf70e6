"""Queues a message to the person who filed: their ticket reached a new stage. Written
in the caller's transaction, so the stage and the message to tell it are never apart."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.crypto import KeyRing
from bot.filing_service import filer_seal_context
from bot.notifications import TicketMoved
from bot.storage.models import Filing
from bot.storage.outbound_repository import OutboundRepository


def outbound_seal_context(channel: str, address_hash: str) -> str:
    return f"outbound:{channel}:{address_hash}"


def tell_filer(keys: KeyRing, session: AsyncSession, filing: Filing, now: datetime) -> None:
    address = keys.unseal(filing.sealed_filer_address, context=filer_seal_context(filing.id))
    message = TicketMoved(
        ticket=filing.ticket,
        kind=filing.kind,
        stage=filing.stage,
        reason_code=filing.stage_reason,
        registry_ticket=filing.registry_ticket,
    )
    context = outbound_seal_context(filing.filer_channel, filing.filer_hash)
    OutboundRepository(session).add(
        channel=filing.filer_channel,
        address_hash=filing.filer_hash,
        sealed_address=keys.seal(address, context=context),
        language=filing.language,
        payload=message.to_json(),
        now=now,
    )
