"""The facilitator's own steps: linking a chat with a one-time code, and the list of their
households with the tickets filed for them. Everything else a facilitator does (checks,
filings, notices) runs through the citizens' steps, under the role the engine puts in
the context (DialogContext.facilitator): the area rule below is how those steps tell.
"""

from __future__ import annotations

from dataclasses import replace

from bot.dialogs.model import (
    ActivateFacilitator,
    Choice,
    DialogState,
    Expect,
    Input,
    InputKind,
    JsonValue,
    ListHouseholds,
    Notice,
    Reply,
    Transition,
)
from bot.dialogs.ticket_words import kind_label, stage_label
from bot.facilitators import (
    ActivationOutcome,
    ActivationRefusal,
    ActivationRefused,
    FacilitatorRole,
    HouseholdPage,
)
from bot.i18n import Translator

CODE_STEP = "facilitator.code"
ACTIVATING_STEP = "facilitator.activating"
LOADING_STEP = "facilitator.loading"
HOUSEHOLDS_STEP = "facilitator.households"
# Working data: the facilitator a step was begun for. A step begun by a citizen, or for
# a facilitator since deactivated, is not carried on under another role.
ROLE_KEY = "as_facilitator"


def start_activation(state: DialogState, code: str, t: Translator) -> Transition:
    """/pendamping with its code, or without (then the code is asked for)."""
    if not state.context.photos:
        return telegram_only(state, t)
    role = state.context.facilitator
    if role is not None:
        return Transition(
            state.at("menu"),
            notice=Notice(
                t.gettext("This chat already works for facilitator {id}.").format(id=role.id)
            ),
        )
    if not code.strip():
        return Transition(state.at(CODE_STEP))
    return Transition(state.at(ACTIVATING_STEP), effect=ActivateFacilitator(code.strip()))


def code_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext(
            "For PKH facilitators: type the activation code your operator gave you "
            "(10 letters and digits, like K7M2Q-9XHRT)."
        ),
        brief=t.gettext("Type your facilitator code:"),
        choices=(Choice("home", t.gettext("Cancel")),),
        expects=Expect.TEXT,
    )


def handle_code(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is not InputKind.TEXT:
        return None
    return Transition(state.at(ACTIVATING_STEP), effect=ActivateFacilitator(inp.value.strip()))


def activating_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Checking the code, one moment…"))


def resume_activation(state: DialogState, outcome: ActivationOutcome, t: Translator) -> Transition:
    if not isinstance(outcome, ActivationRefused):
        areas = ", ".join(outcome.areas)
        # The role comes with the next message's context; the menu shown now has it too.
        role = FacilitatorRole(outcome.facilitator_id, outcome.areas)
        linked = replace(state, context=replace(state.context, facilitator=role))
        return Transition(
            linked.at("menu"),
            notice=Notice(
                t.gettext(
                    "Activated. This chat now works for PKH facilitator {id}, for the "
                    "kecamatan {areas}. Everything you do here is recorded under your ID."
                ).format(id=outcome.facilitator_id, areas=areas)
            ),
        )
    notice = Notice(_refusal_words(outcome.reason, t))
    if outcome.reason is ActivationRefusal.UNKNOWN_CODE:
        return Transition(state.at(CODE_STEP), notice=notice)  # a typing slip: type it again
    return Transition(state.at("menu"), notice=notice)


def _refusal_words(reason: ActivationRefusal, t: Translator) -> str:
    words = {
        ActivationRefusal.UNKNOWN_CODE: t.gettext(
            "That code is not right. Check it and type it again, or ask your operator."
        ),
        ActivationRefusal.ALREADY_USED: t.gettext(
            "That code has already been used. Each code works once: ask your operator for "
            "a new one."
        ),
        ActivationRefusal.EXPIRED: t.gettext(
            "That code has expired (a code works for 72 hours). Ask your operator for a new one."
        ),
        ActivationRefusal.DEACTIVATED: t.gettext(
            "This facilitator account has been deactivated. Please contact your operator."
        ),
        ActivationRefusal.CHAT_LINKED_ELSEWHERE: t.gettext(
            "This chat already works for another facilitator. Ask your operator to "
            "deactivate that account first."
        ),
        ActivationRefusal.TOO_MANY_ATTEMPTS: t.gettext(
            "Too many codes that did not work today. Please try again tomorrow, or ask your "
            "operator."
        ),
    }
    return words[reason]


def telegram_only(state: DialogState, t: Translator) -> Transition:
    """Facilitators work in Telegram: a phone's menu has no room for their forms and
    lists, and cannot take the photos they file (the channel without photos is USSD)."""
    return Transition(
        state,
        notice=Notice(
            t.gettext("PKH facilitators use this service in Telegram."),
            t.gettext("Facilitators: use Telegram."),
        ),
    )


def facilitators_only(state: DialogState, t: Translator) -> Transition:
    """A citizen (or a deactivated facilitator) used a facilitator's command."""
    return Transition(
        state,
        notice=Notice(
            t.gettext(
                "This is for PKH facilitators only. A facilitator activates this chat with "
                "/pendamping and the code from their operator."
            ),
            t.gettext("For PKH facilitators only."),
        ),
    )


def no_erasure_while_linked(state: DialogState, t: Translator) -> Transition:
    """What a facilitator filed and follows belongs to the households: erasing the chat's
    data would withdraw their filings. The operator deactivates the account first."""
    return Transition(
        state,
        notice=Notice(
            t.gettext(
                "This chat works for a PKH facilitator: what it filed and follows belongs "
                "to the households. Ask your operator to deactivate your account first, "
                "then erase your data."
            )
        ),
    )


def outside_area_notice(areas: tuple[str, ...], t: Translator) -> Notice:
    return Notice(
        t.gettext(
            "This NIK is from a kecamatan outside your areas ({areas}). You can act only for "
            "households in your areas; ask your operator if your areas have changed."
        ).format(areas=", ".join(areas)),
        t.gettext("This NIK is outside your areas."),
    )


def area_problem(state: DialogState, nik: str, t: Translator) -> Notice | None:
    """A facilitator may type only NIKs of their own kecamatan; citizens are not bound."""
    role = state.context.facilitator
    if role is None or role.serves(nik):
        return None
    return outside_area_notice(role.areas, t)


def role_changed(state: DialogState) -> bool:
    """The step was begun under another role than the chat has now (a facilitator was
    deactivated or linked meanwhile): its working data must not be used."""
    role = state.context.facilitator
    return state.data.get(ROLE_KEY) != (None if role is None else role.id)


def role_changed_notice(t: Translator) -> Notice:
    return Notice(
        t.gettext(
            "Your facilitator access has changed, so what you were doing was stopped and "
            "nothing was sent. Please start again."
        )
    )


# --- my households -------------------------------------------------------------------------


def list_households(state: DialogState, t: Translator, page: int = 0) -> Transition:
    if state.context.facilitator is None:
        return facilitators_only(state, t)
    return Transition(state.at(LOADING_STEP), effect=ListHouseholds(max(0, page)))


def loading_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Looking up your households…"))


def resume_households(state: DialogState, outcome: HouseholdPage, t: Translator) -> Transition:
    shown: JsonValue = [
        [
            household.masked_nik,
            [[ticket.ticket, ticket.kind, ticket.stage] for ticket in household.tickets],
        ]
        for household in outcome.households
    ]
    return Transition(
        state.at(
            HOUSEHOLDS_STEP,
            households=shown,
            page=outcome.page,
            total=outcome.total,
            more=outcome.more,
        )
    )


def households_prompt(state: DialogState, t: Translator) -> Reply:
    page, total = _number(state, "page"), _number(state, "total")
    listed = state.data.get("households")
    rows = listed if isinstance(listed, list) else []
    back = Choice("home", t.gettext("Menu"))
    if total == 0:
        return Reply(
            text=t.gettext(
                "No households on your list yet. A household is added when you check its "
                "status, file for it or subscribe it to notices."
            ),
            brief=t.gettext("No households on your list yet."),
            choices=(back,),
            expects=Expect.CHOICE,
        )
    lines = [t.gettext("Your households ({total}):").format(total=total)]
    for row in rows:
        if not (isinstance(row, list) and len(row) == 2 and isinstance(row[1], list)):
            continue
        lines.append(f"• {row[0]}")
        tickets = [item for item in row[1] if isinstance(item, list) and len(item) == 3]
        if not tickets:
            lines.append("  " + t.gettext("no tickets"))
        for ticket, kind, stage in tickets:
            lines.append(f"  {ticket}: {kind_label(str(kind), t)}, {stage_label(str(stage), t)}")
    choices = []
    if page > 0:
        choices.append(Choice("previous", t.gettext("Previous page")))
    if state.data.get("more") is True:
        choices.append(Choice("next", t.gettext("Next page")))
    return Reply(
        text="\n".join(lines),
        brief=lines[0],
        choices=(*choices, back),
        expects=Expect.CHOICE,
    )


def handle_households(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is InputKind.CHOICE and inp.value in ("next", "previous"):
        step = 1 if inp.value == "next" else -1
        return list_households(state, t, _number(state, "page") + step)
    return None


def _number(state: DialogState, key: str) -> int:
    value = state.data.get(key)
    return value if isinstance(value, int) else 0
