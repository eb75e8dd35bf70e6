"""The person's rights over their data: see what is held (/data_saya) and erase it
(/hapus_data, or withdrawing consent, which erases too: processing stops at once)."""

from __future__ import annotations

from bot.dialogs.facilitator import no_erasure_while_linked
from bot.dialogs.filing import Draft
from bot.dialogs.model import (
    FORGOTTEN_STEP,
    Choice,
    DialogState,
    EraseMyData,
    Expect,
    Input,
    InputKind,
    JsonValue,
    Reply,
    ShowMyData,
    Transition,
)
from bot.dialogs.ticket_words import kind_label, stage_label
from bot.i18n import Translator, translator
from bot.personal_data import Erased, HeldData

LOADING_STEP = "mydata.loading"
SHOWN_STEP = "mydata.shown"
CONFIRM_STEP = "erase.confirm"
ERASING_STEP = "erase.running"
ERASE = "erase"  # also the command: from the data shown, it asks for confirmation
CONFIRMED = "erase_yes"
KEEP = "keep"
_TICKETS_SHOWN = 10


def show(state: DialogState) -> Transition:
    # A filing begun has photos only the working data knows: keep them for an erasure.
    return Transition(
        state.at(LOADING_STEP, draft_photos=_draft_photos(state)), effect=ShowMyData()
    )


def loading_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Looking up what we hold about you…"))


def resume_show(state: DialogState, held: HeldData, t: Translator) -> Transition:
    summary: dict[str, JsonValue] = {
        "consented": t.date(held.consented_at) if held.consented_at else None,
        "tickets": [
            [item.ticket, kind_label(item.kind, t), stage_label(item.stage, t)]
            for item in held.tickets[:_TICKETS_SHOWN]
        ],
        "ticket_count": len(held.tickets),
        "photos": held.photos,
        "subscriptions": list(held.subscriptions),
        "messages": held.messages_waiting,
        "matches": held.matched_households,
    }
    return Transition(state.at(SHOWN_STEP, held=summary, draft_photos=_draft_photos(state)))


def shown_prompt(state: DialogState, t: Translator) -> Reply:
    held = state.data.get("held")
    held = held if isinstance(held, dict) else {}
    consented = held.get("consented")
    raw_tickets = held.get("tickets")
    tickets = raw_tickets if isinstance(raw_tickets, list) else []
    subscriptions = held.get("subscriptions")
    masked = [str(s) for s in subscriptions] if isinstance(subscriptions, list) else []
    count = _number(held, "ticket_count")
    photos, messages, matches = (_number(held, k) for k in ("photos", "messages", "matches"))
    lines = [
        t.gettext("What we hold about you:"),
        t.gettext("- Your language, and your consent given on {date}.").format(date=consented)
        if consented
        else t.gettext("- Your language. You have not given consent."),
        t.ngettext("- {count} ticket:", "- {count} tickets:", count).format(count=count)
        if count
        else t.gettext("- No tickets."),
    ]
    lines += [
        f"  {' · '.join(str(part) for part in item)}" for item in tickets if isinstance(item, list)
    ]
    lines += [
        t.ngettext(
            "- {count} photo of your filings (deleted some days after DTSEN receives them).",
            "- {count} photos of your filings (deleted some days after DTSEN receives them).",
            photos,
        ).format(count=photos),
        t.gettext("- Change notices for: {niks}.").format(niks=", ".join(masked))
        if masked
        else t.gettext("- No change notices."),
        t.ngettext(
            "- {count} message waiting for you.", "- {count} messages waiting for you.", messages
        ).format(count=messages),
        t.ngettext(
            "- {count} household you checked with the right name, kept as a code for 90 days "
            "so that wrong names typed by others never lock you out.",
            "- {count} households you checked with the right name, kept as codes for 90 days "
            "so that wrong names typed by others never lock you out.",
            matches,
        ).format(count=matches),
        t.gettext(
            "We keep no NIK or name from your checks. Counts of your checks, which stop "
            "abuse, are kept for at most two days."
        ),
    ]
    return Reply(
        text="\n".join(lines),
        brief=t.gettext(
            "We hold: consent {date}, {tickets} tickets, {photos} photos, {notices} notices, "
            "{messages} messages."
        ).format(
            date=consented or "-",
            tickets=count,
            photos=photos,
            notices=len(masked),
            messages=messages,
        ),
        choices=(Choice(ERASE, t.gettext("Erase my data")), Choice("home", t.gettext("Menu"))),
        expects=Expect.CHOICE,
    )


def handle_shown(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is InputKind.CHOICE and inp.value == ERASE:
        return ask_to_erase(state)
    if inp.kind is InputKind.CHOICE and inp.value == "home":
        return Transition(state.at("menu" if state.consented else "consent"))
    return None


def ask_to_erase(state: DialogState, *, withdrawing: bool = False) -> Transition:
    """The confirmation, keeping the photos of a filing begun, to delete them too."""
    if state.context.facilitator is not None:
        return no_erasure_while_linked(state, translator(state.language))
    return Transition(
        state.at(CONFIRM_STEP, draft_photos=_draft_photos(state), withdrawing=withdrawing)
    )


def confirm_prompt(state: DialogState, t: Translator) -> Reply:
    first = (
        t.gettext("Withdrawing your consent stops all processing and erases your data.")
        if state.data.get("withdrawing") is True
        else t.gettext("Erase your data?")
    )
    return Reply(
        text=first
        + " "
        + t.gettext(
            "We will delete your language and consent, your change notices, your messages, "
            "and your tickets with their photos. Filings not yet sent to DTSEN are withdrawn. "
            "Filings already sent stay with DTSEN, the registry: we cannot delete them there. "
            "This cannot be undone."
        ),
        brief=t.gettext(
            "Erase consent, notices, tickets, photos? Unsent filings are withdrawn. "
            "Cannot be undone."
        ),
        choices=(
            Choice(CONFIRMED, t.gettext("Yes, erase everything")),
            Choice(KEEP, t.gettext("No, keep my data")),
        ),
        expects=Expect.CHOICE,
        brief_gives_way=True,
    )


def handle_confirm(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is not InputKind.CHOICE:
        return None
    if inp.value == KEEP:
        return Transition(state.at("menu" if state.consented else "consent"))
    if inp.value == CONFIRMED:
        kept = state.data.get("draft_photos")
        photos = (
            tuple(sha for sha in kept if isinstance(sha, str)) if isinstance(kept, list) else ()
        )
        return Transition(state.at(ERASING_STEP), effect=EraseMyData(photos))
    return None


def erasing_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Erasing…"))


def resume_erase(state: DialogState, erased: Erased, t: Translator) -> Transition:
    return Transition(
        state.at(FORGOTTEN_STEP),
        reply=Reply(
            text=t.gettext(
                "Done. Erased: filings {filings}, photos {photos}, change notices {notices}, "
                "messages {messages}, and your language and consent. DTSEN (Kemensos) "
                "keeps the filings it had already received. To see, correct or delete them "
                "there, ask your village office or the Kemensos Command Center (phone 171). "
                "Send /start to use this service again."
            ).format(
                filings=erased.filings,
                photos=erased.photos,
                notices=erased.subscriptions,
                messages=erased.messages,
            ),
            brief=t.gettext(
                "Erased. DTSEN keeps filings it already received: ask your village office or "
                "Kemensos, phone 171."
            ),
        ),
    )


def _draft_photos(state: DialogState) -> list[JsonValue]:
    """Photos of a filing begun: in its draft, or carried along from a step before."""
    draft = Draft.of(state)
    photos: list[JsonValue] = [sha for sha, _ in draft.photos] if draft else []
    kept = state.data.get("draft_photos")
    if isinstance(kept, list):
        photos += [sha for sha in kept if isinstance(sha, str)]
    return photos


def _number(held: dict[str, JsonValue], key: str) -> int:
    value = held.get(key)
    return value if isinstance(value, int) else 0
