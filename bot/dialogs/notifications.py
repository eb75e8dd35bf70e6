"""Messages the service sends on its own, worded for the person (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.dialogs.model import Reply
from bot.dialogs.status_report import (
    PROGRAMME_NAMES,
    REASONS,
    SCAM_WARNING,
    quarter_short,
    quarter_words,
)
from bot.dialogs.ticket_words import kind_label, reason_words, stage_label
from bot.i18n import Translator
from bot.notifications import Notification, QuarterNotice, TicketMoved

# How long after a quarterly update an objection is usually taken (shown, not enforced).
OBJECTION_DAYS = 30
# Telegram refuses a message over 4,096 characters: a digest is cut into parts under this.
DIGEST_PART_LIMIT = 4000


def render_notification(message: Notification, t: Translator) -> Reply:
    """A message the person did not ask for just now, in their language."""
    if isinstance(message, QuarterNotice):
        return render_quarter_notice(message, t)
    return _render_ticket_moved(message, t)


def render_quarter_notice(notice: QuarterNotice, t: Translator) -> Reply:
    """What changed at the quarterly update, why, and what the person can do."""
    when = quarter_words(notice.quarter, t)
    lines = [
        t.gettext(
            "Your household's social-aid status changed at the update for the {quarter}."
        ).format(quarter=when),
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
        quarter=quarter_short(notice.quarter, t),
        before=notice.previous_decile,
        after=notice.current_decile,
        gained=" +" + ",".join(notice.gained) if notice.gained else "",
        lost=" -" + ",".join(notice.lost) if notice.lost else "",
        days=OBJECTION_DAYS,
    )
    return Reply(text="\n".join(lines), brief=brief, language=t.language)


@dataclass(frozen=True, slots=True)
class DigestHousehold:
    """One changed household in a facilitator's digest: its NIK masked, what changed."""

    masked_nik: str
    notice: QuarterNotice


@dataclass(frozen=True, slots=True)
class DigestPart:
    """One message of a digest, listing the next `households` households, in order."""

    reply: Reply
    households: int


def render_quarter_digest(
    quarter: str,
    households: Sequence[DigestHousehold],
    t: Translator,
    *,
    limit: int = DIGEST_PART_LIMIT,
) -> list[DigestPart]:
    """A facilitator's quarterly update: one line per changed household, in as few
    messages of at most `limit` characters as they fit in, cut only between lines. The
    header (with "part 1/3" when there are several) is on each; the objection hint and
    the scam warning once, at the end."""
    if not households:
        return []
    title = t.gettext("Update for the {quarter}: {count} of your households changed.").format(
        quarter=quarter_words(quarter, t), count=len(households)
    )
    lines = [_digest_line(household, t) for household in households]
    footer = "\n".join(
        [
            t.gettext(
                "If a change looks wrong, the household can object with /sanggah within "
                "{days} days, or ask the village office."
            ).format(days=OBJECTION_DAYS),
            t.gettext(SCAM_WARNING),
        ]
    )
    # A header that says "part 9/10" is longer than one that says "part 1/2": cut for the
    # longest header of that many parts, until the count of parts holds still.
    parts = 1
    while True:
        widest = len(_digest_header(title, parts, parts, t))
        chunks = _cut(lines, widest, len(footer), limit)
        if len(chunks) <= parts:
            break
        parts = len(chunks)
    messages = []
    for number, chunk in enumerate(chunks, start=1):
        blocks = [_digest_header(title, number, len(chunks), t), "\n".join(chunk)]
        if number == len(chunks):
            blocks.append(footer)
        messages.append(
            DigestPart(Reply(text="\n\n".join(blocks), language=t.language), len(chunk))
        )
    return messages


def _digest_header(title: str, part: int, parts: int, t: Translator) -> str:
    if parts == 1:
        return title
    return f"{title} " + t.gettext("(part {part}/{parts})").format(part=part, parts=parts)


def _digest_line(household: DigestHousehold, t: Translator) -> str:
    notice = household.notice
    words = [
        t.gettext("{nik}: decile {before}→{after}").format(
            nik=household.masked_nik, before=notice.previous_decile, after=notice.current_decile
        )
    ]
    if notice.gained:
        words.append(t.gettext("gained {codes}").format(codes=", ".join(notice.gained)))
    if notice.lost:
        words.append(t.gettext("lost {codes}").format(codes=", ".join(notice.lost)))
    return "; ".join(words)


def _cut(lines: Sequence[str], header: int, footer: int, limit: int) -> list[list[str]]:
    """Lines into consecutive chunks, each as long as fits: a chunk's message is the
    header, a blank line and its lines, and the last one's also a blank line and the
    footer. Filling each chunk before the next gives the fewest chunks."""
    chunks: list[list[str]] = [[]]
    size = header + 1  # the blank line after the header, less the first line's newline
    for index, line in enumerate(lines):
        cost = len(line) + 1
        if index == len(lines) - 1:
            cost += 2 + footer  # the footer goes with the last line: never a part alone
        if chunks[-1] and size + cost > limit:
            chunks.append([])
            size = header + 1
        chunks[-1].append(line)
        size += cost
    return chunks


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
