"""Messages the service sends on its own, not as a reply: a ticket moved, and (later) a
quarterly notice. Domain values; each channel's outbound port delivers them, rendered
in the person's language by bot/dialogs/notifications.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

TICKET_MOVED: Final = "ticket_moved"


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


Notification = TicketMoved


class UnknownNotification(ValueError):
    """A stored message of a type this version does not know."""


def notification_from_json(payload: str) -> Notification:
    document = json.loads(payload)
    if not isinstance(document, dict) or document.get("type") != TICKET_MOVED:
        raise UnknownNotification("unknown notification type")
    return TicketMoved(
        ticket=str(document["ticket"]),
        kind=str(document["kind"]),
        stage=str(document["stage"]),
        reason_code=document.get("reason_code"),
        registry_ticket=document.get("registry_ticket"),
    )
