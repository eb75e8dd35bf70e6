"""Messages the service sends on its own, not as a reply: a ticket moved, and (later) a
quarterly notice. Domain values; each channel's outbound port delivers them, rendered
in the person's language by bot/dialogs/notifications.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

TICKET_MOVED: Final = "ticket_moved"
QUARTER_NOTICE: Final = "quarter_notice"


@dataclass(frozen=True, slots=True)
class TicketMoved:
    """A filing's ticket reached a new stage (or was refused by the registry)."""

    ticket: str
    kind: str
    stage: str
    reason_code: str | None = None
    registry_ticket: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "type": TICKET_MOVED,
                "ticket": self.ticket,
                "kind": self.kind,
                "stage": self.stage,
                "reason_code": self.reason_code,
                "registry_ticket": self.registry_ticket,
            }
        )


@dataclass(frozen=True, slots=True)
class QuarterNotice:
    """A subscribed household's status changed at a quarterly update. No NIK: the
    subscription says whose it is."""

    quarter: str
    previous_decile: int
    current_decile: int
    gained: tuple[str, ...]
    lost: tuple[str, ...]
    reason_code: str | None

    def to_json(self) -> str:
        return json.dumps(
            {
                "type": QUARTER_NOTICE,
                "quarter": self.quarter,
                "previous_decile": self.previous_decile,
                "current_decile": self.current_decile,
                "gained": list(self.gained),
                "lost": list(self.lost),
                "reason_code": self.reason_code,
            }
        )


Notification = TicketMoved | QuarterNotice


class UnknownNotification(ValueError):
    """A stored message of a type this version does not know."""


def notification_from_json(payload: str) -> Notification:
    document = json.loads(payload)
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == QUARTER_NOTICE:
        return QuarterNotice(
            quarter=str(document["quarter"]),
            previous_decile=int(document["previous_decile"]),
            current_decile=int(document["current_decile"]),
            gained=tuple(str(code) for code in document["gained"]),
            lost=tuple(str(code) for code in document["lost"]),
            reason_code=document.get("reason_code"),
        )
    if kind != TICKET_MOVED:
        raise UnknownNotification("unknown notification type")
    return TicketMoved(
        ticket=str(document["ticket"]),
        kind=str(document["kind"]),
        stage=str(document["stage"]),
        reason_code=document.get("reason_code"),
        registry_ticket=document.get("registry_ticket"),
    )
