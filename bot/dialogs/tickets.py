"""Following tickets: the person's tickets with their stage, and one ticket's history."""

from __future__ import annotations

from bot.dialogs.model import (
    Choice,
    DialogState,
    Expect,
    Input,
    InputKind,
    JsonValue,
    ListTickets,
    Notice,
    Reply,
    ShowTicket,
    TicketMissing,
    Transition,
)
from bot.dialogs.ticket_words import kind_label, reason_words, stage_label
from bot.filings import TicketHistory, TicketList
from bot.i18n import Translator

LOADING_STEP = "tickets.loading"
LIST_STEP = "tickets.list"
SHOW_STEP = "tickets.show"


def list_tickets(state: DialogState) -> Transition:
    return Transition(state.at(LOADING_STEP), effect=ListTickets())


def loading_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Looking up your tickets…"))


def _listed(state: DialogState) -> list[tuple[str, str, str]]:
    raw = state.data.get("tickets")
    return [
        (str(item[0]), str(item[1]), str(item[2]))
        for item in (raw if isinstance(raw, list) else [])
        if isinstance(item, list) and len(item) == 3
    ]


def list_prompt(state: DialogState, t: Translator) -> Reply:
    listed = _listed(state)
    back = (Choice("home", t.gettext("Menu")),)
    if not listed:
        return Reply(
            text=t.gettext(
                "You have no tickets yet. A ticket is made when you file a proposal "
                "(/usul), an objection (/sanggah) or a correction (/perbaiki)."
            ),
            brief=t.gettext("You have no tickets yet."),
            choices=back,
            expects=Expect.CHOICE,
        )
    lines = [t.gettext("Your tickets (newest first). Choose one to see its history:")]
    lines += [
        f"{ticket}: {kind_label(kind, t)}, {stage_label(stage, t)}"
        for ticket, kind, stage in listed
    ]
    return Reply(
        text="\n".join(lines),
        brief=t.gettext("Your tickets:"),
        choices=(
            *(Choice(ticket, ticket) for ticket, _, _ in listed),
            *back,
        ),
        expects=Expect.CHOICE,
    )


def handle_list(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    known = {ticket for ticket, _, _ in _listed(state)}
    if inp.kind is InputKind.CHOICE and inp.value in known:
        kept: JsonValue = state.data.get("tickets")
        return Transition(state.at(LOADING_STEP, tickets=kept), effect=ShowTicket(inp.value))
    return None


def resume_tickets(
    state: DialogState, outcome: TicketList | TicketHistory | TicketMissing, t: Translator
) -> Transition:
    if isinstance(outcome, TicketList):
        listed: JsonValue = [[s.ticket, s.kind, s.stage] for s in outcome.tickets]
        return Transition(state.at(LIST_STEP, tickets=listed))
    kept: JsonValue = state.data.get("tickets")
    if isinstance(outcome, TicketMissing):
        return Transition(
            state.at(LIST_STEP, tickets=kept),
            notice=Notice(t.gettext("That ticket was not found.")),
        )
    return Transition(state.at(SHOW_STEP, tickets=kept), reply=history_reply(outcome, t))


def history_reply(history: TicketHistory, t: Translator) -> Reply:
    summary = history.summary
    lines = [
        t.gettext("Ticket {ticket}: {kind}").format(
            ticket=summary.ticket, kind=kind_label(summary.kind, t)
        )
    ]
    if summary.registry_ticket:
        lines.append(t.gettext("DTSEN number: {number}").format(number=summary.registry_ticket))
    lines.append(t.gettext("Filed on {date}.").format(date=t.date(summary.filed_at)))
    for event in history.events:
        line = f"• {t.date(event.at)}: {stage_label(event.stage, t)}"
        why = reason_words(event.stage, event.reason_code, t)
        lines.append(f"{line} ({why})" if why else line)
    now = stage_label(summary.stage, t)
    return Reply(
        text="\n".join(lines),
        brief=f"{summary.ticket}: {now}",
        choices=(
            Choice("tickets", t.gettext("My tickets")),
            Choice("home", t.gettext("Menu")),
        ),
        expects=Expect.CHOICE,
    )


def show_prompt(state: DialogState, t: Translator) -> Reply:
    # Shown again only after an input it cannot use: offer the way on.
    return Reply(
        text=t.gettext("Choose what to do next:"),
        choices=(
            Choice("tickets", t.gettext("My tickets")),
            Choice("home", t.gettext("Menu")),
        ),
        expects=Expect.CHOICE,
    )
