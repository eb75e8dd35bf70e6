"""Messages the service sends on its own, worded for the person (pure)."""

from __future__ import annotations

from bot.dialogs.model import Reply
from bot.dialogs.ticket_words import kind_label, reason_words, stage_label
from bot.i18n import Translator
from bot.notifications import Notification


def render_notification(message: Notification, t: Translator) -> Reply:
    """A ticket that moved: where it is now, why, and what the person can do."""
    head = t.gettext("Ticket {ticket} ({kind}) is now: {stage}.").format(
        ticket=message.ticket, kind=kind_label(message.kind, t), stage=stage_label(message.stage, t)
    )
    lines = [head]
    if message.stage == "received" and message.registry_ticket:
        lines.append(t.gettext("DTSEN number: {number}").format(number=message.registry_ticket))
    why = reason_words(message.stage, message.reason_code, t)
    if why:
        lines.append(t.gettext("Reason: {reason}.").format(reason=why))
    next_step = _next_step(message.stage, t)
    if next_step:
        lines.append(next_step)
    lines.append(t.gettext("This service never asks for money, a PIN or an OTP code."))
    brief = head if not why else f"{head} {why}."
    return Reply(text="\n".join(lines), brief=brief, language=t.language)


def _next_step(stage: str, t: Translator) -> str | None:
    if stage == "accepted":
        return t.gettext("The registry's data is corrected at the next quarterly update.")
    if stage == "rejected":
        return t.gettext("If you have new evidence, you may file again, or ask the village office.")
    if stage == "refused":
        return t.gettext("DTSEN did not take this filing. Please correct it and file again.")
    if stage == "in_verification":
        return t.gettext("An officer may visit the household.")
    return None
