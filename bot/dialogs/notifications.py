"""Messages the service sends on its own, worded for the person (pure)."""

from __future__ import annotations

from bot.dialogs.model import Reply
from bot.dialogs.status_report import PROGRAMME_NAMES, REASONS, SCAM_WARNING, quarter_words
from bot.dialogs.ticket_words import kind_label, reason_words, stage_label
from bot.i18n import Translator
from bot.notifications import Notification, QuarterNotice, TicketMoved

# How long after a quarterly update an objection is usually taken (shown, not enforced).
OBJECTION_DAYS = 30


def render_notification(message: Notification, t: Translator) -> Reply:
    """A message the person did not ask for just now, in their language."""
    if isinstance(message, QuarterNotice):
        return render_quarter_notice(message, t)
    return _render_ticket_moved(message, t)


def render_quarter_notice(notice: QuarterNotice, t: Translator) -> Reply:
    """What changed at the quarterly update, why, and what the person can do."""
    when = quarter_words(notice.quarter, t)
    lines = [
        t.gettext("Your household's social-aid status changed at the {quarter} update.").format(
            quarter=when
        ),
        t.gettext(
            "Welfare decile: {before} before, {after} now (decile 1 is the poorest tenth of "
            "households)."
        ).format(before=notice.previous_decile, after=notice.current_decile),
    ]
    if notice.gained:
        names = ", ".join(t.gettext(PROGRAMME_NAMES.get(c, c)) for c in notice.gained)
        lines.append(t.gettext("Programmes gained: {names}.").format(names=names))
    if notice.lost:
        names = ", ".join(t.gettext(PROGRAMME_NAMES.get(c, c)) for c in notice.lost)
        lines.append(t.gettext("Programmes lost: {names}.").format(names=names))
    if notice.reason_code is not None:
        full, _ = REASONS.get(notice.reason_code, (None, None))
        why = t.gettext(full) if full else t.gettext("a reason the registry gave without details")
        lines.append(t.gettext("Why: {reason}.").format(reason=why))
    lines.append(
        t.gettext(
            "If you think this is wrong, file an objection with /sanggah within {days} days, "
            "or ask the village office."
        ).format(days=OBJECTION_DAYS)
    )
    lines.append(t.gettext(SCAM_WARNING))
    brief = t.gettext(
        "Aid status changed ({quarter}): decile {before}→{after}.{gained}{lost} "
        "Object within {days} days via menu. No money/PIN/OTP."
    ).format(
        quarter=notice.quarter,
        before=notice.previous_decile,
        after=notice.current_decile,
        gained=" +" + ",".join(notice.gained) if notice.gained else "",
        lost=" -" + ",".join(notice.lost) if notice.lost else "",
        days=OBJECTION_DAYS,
    )
    return Reply(text="\n".join(lines), brief=brief, language=t.language)


def _render_ticket_moved(message: TicketMoved, t: Translator) -> Reply:
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
    lines.append(t.gettext(SCAM_WARNING))
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
