"""Sends the messages the service sends on its own (a ticket moved) through each
channel's outbound port: Telegram pushes them; a channel that cannot push (USSD) holds
them for the person's next session. Claims use leases, as the outbox does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.crypto import KeyRing, SealBroken
from bot.dialogs.model import Reply
from bot.dialogs.notifications import render_notification
from bot.filer_messages import outbound_seal_context
from bot.i18n import translator
from bot.notifications import UnknownNotification, notification_from_json
from bot.storage.database import Database
from bot.storage.models import OutboundMessage
from bot.storage.outbound_repository import FAILED, GONE, HELD, SENT, OutboundRepository

log = logging.getLogger(__name__)


class Delivery(StrEnum):
    SENT = "sent"
    HELD = "held"  # kept for the next session of a channel that cannot push
    GONE = "gone"  # the person blocked the bot or the chat no longer exists
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: Delivery
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class _Claim:
    """A claimed message, read while its row was locked."""

    id: int
    channel: str
    address_hash: str
    sealed_address: bytes
    language: str
    payload: str
    attempts: int

    @classmethod
    def of(cls, row: OutboundMessage) -> _Claim:
        return cls(
            row.id,
            row.channel,
            row.address_hash,
            row.sealed_address,
            row.language,
            row.payload,
            row.attempts,
        )


class OutboundPort(Protocol):
    """How a channel delivers a message nobody asked for just now."""

    async def deliver(self, address: str, reply: Reply) -> DeliveryResult: ...


class HoldForNextSession:
    """The port of a channel that cannot push: the message waits for the next dial."""

    async def deliver(self, address: str, reply: Reply) -> DeliveryResult:
        return DeliveryResult(Delivery.HELD)


class OutboundDispatcher:
    def __init__(
        self,
        database: Database,
        keys: KeyRing,
        ports: Mapping[str, OutboundPort],
        *,
        clock: Callable[[], datetime],
        batch: int = 50,
        lease: timedelta = timedelta(seconds=60),
        max_attempts: int = 10,
    ) -> None:
        self._database = database
        self._keys = keys
        self._ports = dict(ports)
        self._clock = clock
        self._batch = batch
        self._lease = lease
        self._max_attempts = max_attempts

    def add_port(self, channel: str, port: OutboundPort) -> None:
        self._ports[channel] = port

    async def dispatch_due(self) -> int:
        if not self._ports:
            return 0
        async with self._database.transaction() as session:
            rows = await OutboundRepository(session).claim_due(
                tuple(self._ports), self._clock(), self._batch, self._lease
            )
            claimed = [_Claim.of(row) for row in rows]
        for claim in claimed:
            await self._send(claim)
        return len(claimed)

    async def _send(self, claim: _Claim) -> None:
        try:
            address = self._keys.unseal(
                claim.sealed_address,
                context=outbound_seal_context(claim.channel, claim.address_hash),
            ).decode()
            message = notification_from_json(claim.payload)
        except (SealBroken, UnknownNotification, ValueError, KeyError):
            log.error("an outbound message could not be read; dropped")
            await self._finish(claim, DeliveryResult(Delivery.GONE), FAILED)
            return
        reply = render_notification(message, translator(claim.language))
        try:
            result = await self._ports[claim.channel].deliver(address, reply)
        except Exception:
            log.exception("delivering a message on %s failed", claim.channel)
            result = DeliveryResult(Delivery.RETRY)
        await self._finish(claim, result, None)

    async def _finish(self, claim: _Claim, result: DeliveryResult, state: str | None) -> None:
        now = self._clock()
        attempts = claim.attempts
        async with self._database.transaction() as session:
            row = await OutboundRepository(session).get(claim.id)
            if row is None:
                return
            row.lease_until = None
            if state is not None:
                row.state = state
            elif result.outcome is Delivery.SENT:
                row.state, row.sent_at = SENT, now
            elif result.outcome is Delivery.HELD:
                row.state = HELD
            elif result.outcome is Delivery.GONE:
                row.state = GONE
            elif attempts >= self._max_attempts:
                row.state = FAILED
            else:
                wait = max(result.retry_after or 0.0, min(600.0, 2.0 * 2**attempts))
                row.next_attempt_at = now + timedelta(seconds=wait)

    async def run(self, stop: asyncio.Event, *, idle_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                sent = await self.dispatch_due()
            except Exception:
                log.exception("outbound round failed; trying again shortly")
                sent = 0
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle_s)
