"""Subscriptions to quarterly notices: at most a few households per chat or phone, the
NIK sealed, its keyed hash kept for the join with the change feed.

A PKH facilitator subscribes the households they serve through the same dialog: the
subscription then names the facilitator, its notices go out in the chat's digest, and
the facilitator's own, higher cap applies (counted over all their chats)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.crypto import KeyRing, SealBroken
from bot.filings import Filer
from bot.nik import mask_nik
from bot.storage.models import Subscription
from bot.storage.notice_repository import ACTIVE, SubscriptionRepository
from bot.subscriptions import (
    Subscribed,
    SubscribeOutcome,
    SubscriptionList,
    TooManySubscriptions,
    Unsubscribed,
)


def subscription_seal_context(channel: str, address_hash: str) -> str:
    return f"subscription-address:{channel}:{address_hash}"


def nik_seal_context(channel: str, address_hash: str) -> str:
    return f"subscription-nik:{channel}:{address_hash}"


class SubscriptionService:
    def __init__(
        self,
        keys: KeyRing,
        *,
        per_address: int,
        per_facilitator: int = 500,
        clock: Callable[[], datetime],
    ) -> None:
        self._keys = keys
        self._per_address = per_address
        self._per_facilitator = per_facilitator
        self._clock = clock

    async def subscribe(self, session: AsyncSession, who: Filer, nik: str) -> SubscribeOutcome:
        repository = SubscriptionRepository(session)
        nik_hash = self._keys.nik_hash(nik)
        existing = await repository.find(who.channel, who.address_hash, nik_hash)
        active = existing is not None and existing.state == ACTIVE
        if existing is not None and active and existing.facilitator_id == who.facilitator_id:
            return Subscribed(already=True)
        # A subscription the chat held in another role (for itself, or for a facilitator
        # no longer active there) changes hands below, within the new holder's cap.
        if who.facilitator_id is None:
            limit = self._per_address
            held = await repository.count_own(who.channel, who.address_hash)
        else:
            limit = self._per_facilitator
            held = await repository.count_held_by(who.facilitator_id)
        if held >= limit:
            return TooManySubscriptions(limit)
        now = self._clock()
        if existing is not None:
            if not active:  # subscribed before, then stopped or retired
                existing.state, existing.retired_at, existing.created_at = ACTIVE, None, now
            existing.facilitator_id = who.facilitator_id
            return Subscribed(already=active)
        repository.add(
            Subscription(
                channel=who.channel,
                address_hash=who.address_hash,
                sealed_address=self._keys.seal(
                    who.address.encode(),
                    context=subscription_seal_context(who.channel, who.address_hash),
                ),
                nik_hash=nik_hash,
                sealed_nik=self._keys.seal(
                    nik.encode(), context=nik_seal_context(who.channel, who.address_hash)
                ),
                state=ACTIVE,
                created_at=now,
                retired_at=None,
                facilitator_id=who.facilitator_id,
            )
        )
        return Subscribed(already=False)

    async def follow_facilitator(self, session: AsyncSession, who: Filer) -> int:
        """A facilitator linked a new chat (`who`): the subscriptions they made from an
        earlier one move to it, so their digests reach them and not a lost phone. The
        count moved."""
        if who.facilitator_id is None:
            return 0
        repository = SubscriptionRepository(session)
        moved = 0
        for row in await repository.held_by(who.facilitator_id):
            if (row.channel, row.address_hash) == (who.channel, who.address_hash):
                continue
            if await repository.find(who.channel, who.address_hash, row.nik_hash) is not None:
                # The new chat follows this household already: the old row goes.
                await repository.retire(row.id, self._clock())
                continue
            try:
                nik = self._keys.unseal(
                    row.sealed_nik, context=nik_seal_context(row.channel, row.address_hash)
                )
            except SealBroken:
                await repository.retire(row.id, self._clock())
                continue
            row.channel, row.address_hash = who.channel, who.address_hash
            row.sealed_address = self._keys.seal(
                who.address.encode(),
                context=subscription_seal_context(who.channel, who.address_hash),
            )
            row.sealed_nik = self._keys.seal(
                nik, context=nik_seal_context(who.channel, who.address_hash)
            )
            moved += 1
        return moved

    async def list(self, session: AsyncSession, who: Filer) -> SubscriptionList:
        rows = await SubscriptionRepository(session).of(who.channel, who.address_hash)
        context = nik_seal_context(who.channel, who.address_hash)
        items = []
        for row in rows:
            try:
                nik = self._keys.unseal(row.sealed_nik, context=context).decode()
            except SealBroken:
                nik = "????????????????"
            items.append((row.id, mask_nik(nik)))
        return SubscriptionList(tuple(items))

    async def unsubscribe(
        self, session: AsyncSession, who: Filer, subscription_id: int
    ) -> Unsubscribed:
        repository = SubscriptionRepository(session)
        mine = {row.id for row in await repository.of(who.channel, who.address_hash)}
        if subscription_id not in mine:
            return Unsubscribed(False)
        await repository.retire(subscription_id, self._clock())
        return Unsubscribed(True)
