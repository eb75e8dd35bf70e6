"""Subscriptions to quarterly notices: at most a few households per chat or phone, the
NIK sealed, its keyed hash kept for the join with the change feed."""

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
    def __init__(self, keys: KeyRing, *, per_address: int, clock: Callable[[], datetime]) -> None:
        self._keys = keys
        self._per_address = per_address
        self._clock = clock

    async def subscribe(self, session: AsyncSession, who: Filer, nik: str) -> SubscribeOutcome:
        repository = SubscriptionRepository(session)
        nik_hash = self._keys.nik_hash(nik)
        existing = await repository.find(who.channel, who.address_hash, nik_hash)
        if existing is not None and existing.state == ACTIVE:
            return Subscribed(already=True)
        if len(await repository.of(who.channel, who.address_hash)) >= self._per_address:
            return TooManySubscriptions(self._per_address)
        now = self._clock()
        if existing is not None:  # subscribed before, then stopped or retired
            existing.state, existing.retired_at, existing.created_at = ACTIVE, None, now
            return Subscribed(already=False)
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
            )
        )
        return Subscribed(already=False)

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
