"""What the service holds about one person (a chat or a phone), and what erasing it
removed: the domain's answer to the data-subject rights of UU PDP No. 27/2022."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.filings import TicketSummary


@dataclass(frozen=True, slots=True)
class HeldData:
    consented_at: datetime | None
    language: str
    tickets: tuple[TicketSummary, ...]
    photos: int  # kept locally; deleted some days after the registry has them
    subscriptions: tuple[str, ...]  # masked NIKs
    messages_waiting: int
    matched_households: int  # pseudonyms kept so that wrong names by others never lock them

    def __repr__(self) -> str:
        return f"HeldData(tickets={len(self.tickets)}, subscriptions={len(self.subscriptions)})"


@dataclass(frozen=True, slots=True)
class Erased:
    filings: int
    photos: int
    subscriptions: int
    messages: int
