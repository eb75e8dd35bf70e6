"""Quarterly notices: subscribe to a household (the same NIK + name check as a status
check, then a confirmation), list the subscriptions and stop one."""

from __future__ import annotations

from bot.dialogs.model import (
    Choice,
    DialogState,
    Expect,
    Input,
    InputKind,
    JsonValue,
    ListSubscriptions,
    Notice,
    Reply,
    Subscribe,
    Transition,
    Unsubscribe,
)
from bot.dialogs.status import failure_reply, typed_name, typed_nik
from bot.i18n import Translator
from bot.lookup import LookupFailure, LookupOutcome, Throttled
from bot.subscriptions import (
    Subscribed,
    SubscribeOutcome,
    SubscriptionList,
    TooManySubscriptions,
    Unsubscribed,
)

MENU_STEP = "subscribe.menu"
NIK_STEP = "subscribe.nik"
NAME_STEP = "subscribe.name"
WAITING_STEP = "subscribe.waiting"
CONFIRM_STEP = "subscribe.confirm"
SAVING_STEP = "subscribe.saving"
LIST_STEP = "subscribe.list"
# Households listed per page when stopping notices (a citizen follows at most a few).
LIST_PAGE = 6
LOADING_STEP = "subscribe.loading"


def start(state: DialogState) -> Transition:
    return Transition(state.at(NIK_STEP))


def notices_menu(state: DialogState) -> Transition:
    """From the main menu: follow another household, or stop (a phone has no /berhenti)."""
    return Transition(state.at(MENU_STEP))


def menu_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext("Change notices: a message when a household's aid changes."),
        brief=t.gettext("Change notices:"),
        choices=(
            Choice("follow", t.gettext("Follow a household")),
            Choice("unsubscribe", t.gettext("Stop notices")),
            Choice("home", t.gettext("Menu")),
        ),
        expects=Expect.CHOICE,
    )


def handle_menu(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is InputKind.CHOICE and inp.value == "follow":
        return start(state)
    return None


def nik_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext(
            "You will get a message here when this household's social aid changes at a "
            "quarterly update. Type the household's NIK (16 digits)."
        ),
        brief=t.gettext("Change notices. Enter the NIK (16 digits):"),
        expects=Expect.TEXT,
    )


def handle_nik(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    return typed_nik(state, inp, t, then=NAME_STEP)


def handle_name(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    return typed_name(state, inp, t, waiting=WAITING_STEP, lost=NIK_STEP)


def waiting_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Still checking, please wait a moment…"))


def resume_check(state: DialogState, outcome: LookupOutcome, t: Translator) -> Transition:
    """Only a household whose NIK and name match can be followed."""
    if isinstance(outcome, LookupFailure | Throttled):
        again = (Choice("subscribe", t.gettext("Try again")), Choice("home", t.gettext("Menu")))
        return Transition(state.at("menu"), reply=failure_reply(outcome, t, again))
    return Transition(state.at(CONFIRM_STEP, nik=state.text("nik"), masked=outcome.name_masked))


def confirm_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext(
            "Found: {name}. Send me a message when this household's aid changes?"
        ).format(name=state.text("masked") or ""),
        brief=t.gettext("Found: {name}. Get change notices?").format(
            name=state.text("masked") or ""
        ),
        choices=(Choice("yes", t.gettext("Yes, notify me")), Choice("no", t.gettext("No"))),
        expects=Expect.CHOICE,
    )


def handle_confirm(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is not InputKind.CHOICE:
        return None
    nik = state.text("nik")
    if inp.value == "yes" and nik is not None:
        return Transition(state.at(SAVING_STEP), effect=Subscribe(nik))
    if inp.value == "no":
        return Transition(state.at("menu"), notice=Notice(t.gettext("All right, no notices.")))
    return None


def subscribe_checked(state: DialogState, nik: str) -> Transition:
    """Subscribe to the household just checked (its NIK and name matched moments ago)."""
    return Transition(state.at(SAVING_STEP), effect=Subscribe(nik))


def saving_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Saving, one moment…"))


def resume_subscribe(state: DialogState, outcome: SubscribeOutcome, t: Translator) -> Transition:
    done = state.at("menu")
    if isinstance(outcome, TooManySubscriptions):
        text = t.gettext(
            "You already follow {limit} households, the most one account can. Stop one "
            "with /berhenti first."
        ).format(limit=outcome.limit)
        return Transition(done, reply=Reply(text=text, choices=_home(t)))
    text = (
        t.gettext("You already get notices for this household.")
        if isinstance(outcome, Subscribed) and outcome.already
        else t.gettext(
            "Done. When this household's aid changes at a quarterly update, you get one "
            "message here. Stop with /berhenti. This service never asks for money, a PIN "
            "or an OTP code."
        )
    )
    brief = t.gettext("Done: you will get change notices at your next dial after an update.")
    return Transition(done, reply=Reply(text=text, brief=brief, choices=_home(t)))


def _home(t: Translator) -> tuple[Choice, ...]:
    return (Choice("home", t.gettext("Menu")),)


# --- stopping ------------------------------------------------------------------------------


def list_subscriptions(state: DialogState) -> Transition:
    return Transition(state.at(LOADING_STEP), effect=ListSubscriptions())


def loading_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("One moment…"))


def resume_list(
    state: DialogState, outcome: SubscriptionList | Unsubscribed, t: Translator
) -> Transition:
    if isinstance(outcome, Unsubscribed):
        notice = (
            Notice(
                t.gettext("Stopped: no more notices for that household."),
                brief=t.gettext("Notices stopped."),
            )
            if outcome.removed
            else Notice(t.gettext("That subscription was not found."))
        )
        return Transition(state.at("menu"), notice=notice)
    items: JsonValue = [[number, masked] for number, masked in outcome.items]
    return Transition(state.at(LIST_STEP, items=items))


def _items(state: DialogState) -> list[tuple[int, str]]:
    raw = state.data.get("items")
    return [
        (int(item[0]), str(item[1]))
        for item in (raw if isinstance(raw, list) else [])
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
    ]


def list_prompt(state: DialogState, t: Translator) -> Reply:
    items = _items(state)
    if not items:
        return Reply(
            text=t.gettext("You get no notices now. Subscribe with /langganan."),
            brief=t.gettext("You get no notices now."),
            choices=_home(t),
            expects=Expect.CHOICE,
        )
    # A facilitator may follow hundreds: a page at a time (a chat takes ~100 buttons).
    page = _page(state, len(items))
    shown = items[page * LIST_PAGE : (page + 1) * LIST_PAGE]
    paging = []
    if page > 0:
        paging.append(Choice("previous", t.gettext("Previous page")))
    if (page + 1) * LIST_PAGE < len(items):
        paging.append(Choice("next", t.gettext("Next page")))
    return Reply(
        text=t.gettext("You get notices for these households. Choose one to stop:"),
        brief=t.gettext("Choose one to stop:"),
        choices=(
            *(Choice(f"stop:{number}", masked) for number, masked in shown),
            *paging,
            *_home(t),
        ),
        expects=Expect.CHOICE,
    )


def _page(state: DialogState, count: int) -> int:
    page = state.data.get("page")
    last = max(0, (count - 1) // LIST_PAGE)
    return min(max(0, page), last) if isinstance(page, int) else 0


def handle_list(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is InputKind.CHOICE and inp.value in ("next", "previous"):
        page = _page(state, len(_items(state))) + (1 if inp.value == "next" else -1)
        return Transition(state.at_page(page))
    if inp.kind is not InputKind.CHOICE or not inp.value.startswith("stop:"):
        return None
    number = inp.value.removeprefix("stop:")
    if not (number.isascii() and number.isdigit()) or int(number) not in {
        n for n, _ in _items(state)
    }:
        return None
    return Transition(state.at(LOADING_STEP), effect=Unsubscribe(int(number)))
