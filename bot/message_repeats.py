"""Telegram can deliver one message twice: after a restart in polling mode before the
update was confirmed, or when the 200 answering a webhook call was lost. The second copy
must not be applied again (a NIK typed once would land on the name step).

The conversation row keeps the ids of the last messages applied in that chat. Telegram
numbers a chat's messages in increasing order and never reuses a number, but two workers
may apply neighbouring messages out of order, so a set of recent ids is kept rather than
the highest one: a message overtaken by the next is still applied, not dropped.
"""

from __future__ import annotations

KEPT = 16  # far more than can be in flight at once for one chat
STORED_LENGTH = 200  # the column's width: KEPT ids of up to 11 digits, space-separated


def already_applied(recent: str | None, message_id: int) -> bool:
    """Whether the message with `message_id` is among the recent ones already applied."""
    return recent is not None and str(message_id) in recent.split()


def with_applied(recent: str | None, message_id: int) -> str:
    """`recent` with `message_id` added, keeping the last KEPT (fewer, should ids ever
    grow too long for the column)."""
    kept = [] if recent is None else recent.split()
    kept.append(str(message_id))
    kept = kept[-KEPT:]
    while len(" ".join(kept)) > STORED_LENGTH:
        kept.pop(0)
    return " ".join(kept)
