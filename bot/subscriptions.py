"""What asking for quarterly notices can end in (domain values)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Subscribed:
    already: bool  # the chat was subscribed to this household before


@dataclass(frozen=True, slots=True)
class TooManySubscriptions:
    limit: int


SubscribeOutcome = Subscribed | TooManySubscriptions


@dataclass(frozen=True, slots=True)
class SubscriptionList:
    items: tuple[tuple[int, str], ...]  # (subscription id, masked NIK)


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    removed: bool
