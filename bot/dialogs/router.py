"""One entry point for every dialog: route an input to the step it belongs to.

`step` and `resume` are pure: (state, input) → transition, (state, outcome) → transition.
Commands that work anywhere (/start, /cek, /usul, /sanggah, /perbaiki, /tiket, /bahasa,
/bantuan, /privasi, /batal, the facilitator's /pendamping and /dampingan, USSD `0` and
`00`) are handled here, and so is every input a step cannot use: it gets a clear notice
and the same prompt again. A step begun under one role (citizen, or a facilitator) is
not carried on under another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from types import MappingProxyType

from bot.dialogs import facilitator, filing, my_data, subscribe, tickets
from bot.dialogs.consent import (
    DETAILS_STEP,
    consent_prompt,
    details_prompt,
    handle_consent,
    handle_details,
    handle_privacy,
    privacy_prompt,
)
from bot.dialogs.language import handle_language, language_prompt
from bot.dialogs.menu import handle_menu, help_prompt, menu_prompt
from bot.dialogs.model import (
    Choice,
    CommandMenu,
    DialogState,
    Expect,
    Input,
    InputKind,
    Notice,
    Outcome,
    PhotoAccepted,
    PhotoRefused,
    Reply,
    Transition,
)
from bot.dialogs.notifications import render_notification
from bot.dialogs.status import (
    handle_name,
    handle_nik,
    name_prompt,
    nik_prompt,
    resume_lookup,
    waiting_prompt,
)
from bot.facilitators import Activated, ActivationRefused, HouseholdPage
from bot.filings import FilingAccepted, FilingRefused
from bot.i18n import DEFAULT_LANGUAGE, Translator, translator
from bot.lookup import LookupFailure, Throttled
from bot.notifications import Notification
from bot.personal_data import Erased, HeldData
from bot.subscriptions import Subscribed, SubscriptionList, TooManySubscriptions, Unsubscribed
from registry_client.models import StatusReport

Prompt = Callable[[DialogState, Translator], Reply]
Handler = Callable[[DialogState, Input, Translator], Transition | None]


def _ignores(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    return None


STEPS: dict[str, tuple[Prompt, Handler]] = {
    "menu": (menu_prompt, handle_menu),
    "consent": (consent_prompt, handle_consent),
    "privacy": (privacy_prompt, handle_privacy),
    DETAILS_STEP: (details_prompt, handle_details),
    "language": (language_prompt, handle_language),
    "help": (help_prompt, _ignores),
    "status.nik": (nik_prompt, handle_nik),
    "status.name": (name_prompt, handle_name),
    "status.waiting": (waiting_prompt, _ignores),
    filing.SORT_STEP: (filing.sort_prompt, filing.handle_sort),
    filing.FIELD_STEP: (filing.field_prompt, filing.handle_field),
    filing.RECEIVING_STEP: (filing.receiving_prompt, _ignores),
    filing.REVIEW_STEP: (filing.review_prompt, filing.handle_review),
    filing.CHANGE_STEP: (filing.change_prompt, filing.handle_change),
    filing.SUBMITTING_STEP: (filing.submitting_prompt, _ignores),
    tickets.LOADING_STEP: (tickets.loading_prompt, _ignores),
    tickets.LIST_STEP: (tickets.list_prompt, tickets.handle_list),
    tickets.SHOW_STEP: (tickets.show_prompt, _ignores),
    subscribe.MENU_STEP: (subscribe.menu_prompt, subscribe.handle_menu),
    subscribe.NIK_STEP: (subscribe.nik_prompt, subscribe.handle_nik),
    subscribe.NAME_STEP: (name_prompt, subscribe.handle_name),
    subscribe.WAITING_STEP: (subscribe.waiting_prompt, _ignores),
    subscribe.CONFIRM_STEP: (subscribe.confirm_prompt, subscribe.handle_confirm),
    subscribe.SAVING_STEP: (subscribe.saving_prompt, _ignores),
    subscribe.LOADING_STEP: (subscribe.loading_prompt, _ignores),
    subscribe.LIST_STEP: (subscribe.list_prompt, subscribe.handle_list),
    my_data.LOADING_STEP: (my_data.loading_prompt, _ignores),
    my_data.SHOWN_STEP: (my_data.shown_prompt, my_data.handle_shown),
    my_data.CONFIRM_STEP: (my_data.confirm_prompt, my_data.handle_confirm),
    my_data.ERASING_STEP: (my_data.erasing_prompt, _ignores),
    facilitator.CODE_STEP: (facilitator.code_prompt, facilitator.handle_code),
    facilitator.ACTIVATING_STEP: (facilitator.activating_prompt, _ignores),
    facilitator.LOADING_STEP: (facilitator.loading_prompt, _ignores),
    facilitator.HOUSEHOLDS_STEP: (facilitator.households_prompt, facilitator.handle_households),
}
# Steps that wait for an effect's outcome: input meanwhile changes nothing.
WAITING_STEPS = frozenset(
    {
        "status.waiting",
        filing.RECEIVING_STEP,
        filing.SUBMITTING_STEP,
        tickets.LOADING_STEP,
        subscribe.WAITING_STEP,
        subscribe.SAVING_STEP,
        subscribe.LOADING_STEP,
        my_data.LOADING_STEP,
        my_data.ERASING_STEP,
        facilitator.ACTIVATING_STEP,
        facilitator.LOADING_STEP,
    }
)

# Command names as typed (Indonesian and English) → the one name used below.
COMMANDS = {
    "start": "start",
    "cek": "check",
    "check": "check",
    "bahasa": "language",
    "language": "language",
    "bantuan": "help",
    "help": "help",
    "privasi": "privacy",
    "privacy": "privacy",
    "batal": "home",
    "cancel": "home",
    "menu": "home",
    "home": "home",
    "back": "back",
    "usul": "proposal",
    "propose": "proposal",
    "proposal": "proposal",
    "sanggah": "objection",
    "object": "objection",
    "objection": "objection",
    "perbaiki": "correction",
    "correct": "correction",
    "correction": "correction",
    "tiket": "tickets",
    "tickets": "tickets",
    "langganan": "subscribe",
    "subscribe": "subscribe",
    "notices": "notices",
    "berhenti": "unsubscribe",
    "unsubscribe": "unsubscribe",
    "data_saya": "mydata",
    "datasaya": "mydata",
    "my_data": "mydata",
    "mydata": "mydata",
    "hapus_data": "erase",
    "hapusdata": "erase",
    "erase": "erase",
    "delete_my_data": "erase",
    "pendamping": "facilitator",
    "facilitator": "facilitator",
    "dampingan": "households",
    "households": "households",
}

# Where "back" leads from each step (steps that remember their origin use it instead).
_BACK = {
    "status.name": "status.nik",
    "status.nik": "menu",
    subscribe.NAME_STEP: subscribe.NIK_STEP,
    subscribe.NIK_STEP: "menu",
    "privacy": "menu",
    "consent": "consent",
    "menu": "menu",
}
# Steps a detour (language, help) may come back to: their working data survives it.
_RETURNABLE = (
    "menu",
    "consent",
    "privacy",
    "status.nik",
    "status.name",
    filing.SORT_STEP,
    filing.FIELD_STEP,
    filing.REVIEW_STEP,
    filing.CHANGE_STEP,
    tickets.LIST_STEP,
    subscribe.MENU_STEP,
    subscribe.NIK_STEP,
    subscribe.NAME_STEP,
    subscribe.CONFIRM_STEP,
    subscribe.LIST_STEP,
)
# Side steps that come back to where the person was.
_DETOURS = ("language", "help", DETAILS_STEP)
_FILING_STEPS = (filing.FIELD_STEP, filing.REVIEW_STEP, filing.CHANGE_STEP)

# Numbered answers are short; a longer run of digits is data (a NIK), not a choice.
_MAX_CHOICE_DIGITS = 2


def new_state(language: str = DEFAULT_LANGUAGE) -> DialogState:
    return DialogState(step="consent", language=language)


def prompt_for(state: DialogState) -> Reply:
    prompt, _ = STEPS.get(state.step, STEPS["menu"])
    return prompt(state, translator(state.language))


def ambiguous_answer(state: DialogState) -> Transition:
    """A typed answer arrived with more answers behind it: a `*` typed inside it, or a
    request the gateway never delivered. Reading it either way could check a name the
    person never meant, so the step asks again."""
    t = translator(state.language)
    notice = Notice(
        t.gettext("Please type one answer at a time, without the * sign."),
        brief=t.gettext("Type one answer, without *."),
    )
    return _finish(Transition(state, notice=notice))


def step(state: DialogState, inp: Input, mail: Sequence[Notification] = ()) -> Transition:
    """The next state and reply for one input. `mail` holds messages kept for a channel
    that cannot push (USSD): they are shown once, at the start of the next session."""
    return _with_menu(state, _step(state, inp, mail))


def _step(state: DialogState, inp: Input, mail: Sequence[Notification]) -> Transition:
    if state.step not in STEPS:
        state = _home(state)
    t = translator(state.language)
    if state.step not in ("menu", "consent") and facilitator.role_changed(state):
        # Begun as a facilitator since deactivated (or the other way round): nothing of
        # it is carried on under a role it was not begun with.
        return _finish(Transition(_home(state), notice=facilitator.role_changed_notice(t)))
    inp = _resolve_number(state, inp)
    if inp.kind is InputKind.START:
        if mail and state.consented:
            return _finish(Transition(_home(state), reply=_mail_reply(mail, t)))
        return _finish(Transition(_home(state)))
    if inp.kind is InputKind.COMMAND or (
        inp.kind is InputKind.CHOICE and inp.value in COMMANDS and inp.value in state.offered
    ):
        return _finish(_command(state, inp.value, t, inp.argument))
    if inp.kind is InputKind.CHOICE and inp.value not in state.offered:
        # A button from an older message: its moment has passed.
        return _finish(
            Transition(state, notice=Notice(t.gettext("That button is no longer active.")))
        )
    if state.step == "help" and inp.kind is InputKind.TEXT:
        # Reading help does not lose the place: typed text goes to the step before it.
        state = state.back_from_detour()
    _, handler = STEPS[state.step]
    transition = handler(state, inp, t)
    if transition is None:
        transition = _not_usable(state, inp, t)
    return _finish(transition)


def resume(state: DialogState, outcome: Outcome) -> Transition:
    """Continue once an effect has its outcome."""
    return _with_menu(state, _resume(state, outcome))


def _resume(state: DialogState, outcome: Outcome) -> Transition:
    t = translator(state.language)
    if isinstance(outcome, StatusReport | LookupFailure | Throttled):
        if state.step == subscribe.WAITING_STEP:
            transition = subscribe.resume_check(state, outcome, t)
        else:
            transition = resume_lookup(state, outcome, t)
    elif isinstance(outcome, Subscribed | TooManySubscriptions):
        transition = subscribe.resume_subscribe(state, outcome, t)
    elif isinstance(outcome, SubscriptionList | Unsubscribed):
        transition = subscribe.resume_list(state, outcome, t)
    elif isinstance(outcome, PhotoAccepted | PhotoRefused):
        transition = filing.resume_photo(state, outcome, t)
    elif isinstance(outcome, FilingAccepted | FilingRefused):
        transition = filing.resume_submit(state, outcome, t)
    elif isinstance(outcome, HeldData):
        transition = my_data.resume_show(state, outcome, t)
    elif isinstance(outcome, Erased):
        transition = my_data.resume_erase(state, outcome, t)
    elif isinstance(outcome, Activated | ActivationRefused):
        transition = facilitator.resume_activation(state, outcome, t)
    elif isinstance(outcome, HouseholdPage):
        transition = facilitator.resume_households(state, outcome, t)
    else:
        transition = tickets.resume_tickets(state, outcome, t)
    return _finish(transition)


def _mail_reply(mail: Sequence[Notification], t: Translator) -> Reply:
    rendered = [render_notification(message, t) for message in mail]
    return Reply(
        text="\n\n".join(reply.text for reply in rendered),
        brief="\n".join(reply.brief or reply.text for reply in rendered),
        choices=(Choice("home", t.gettext("Menu")),),
        expects=Expect.CHOICE,
    )


def _finish(transition: Transition) -> Transition:
    """Fill in the prompt of the new step and remember which choices it offers."""
    reply = transition.reply
    if reply is None and transition.effect is None:
        reply = prompt_for(transition.state)
        if transition.notice is not None:
            reply = reply.after(transition.notice)
    offered = tuple(choice.key for choice in reply.choices) if reply else ()
    if reply is not None:
        reply = replace(reply, language=transition.state.language)
    return replace(transition, state=_stamped(transition.state, offered), reply=reply)


def _with_menu(before: DialogState, transition: Transition) -> Transition:
    """Ask the channel to change the chat's command menu when the role the last reply was
    made for (stamped in the state) is not the role now, or a facilitator's language
    changed; a citizen's menu follows their app's language by itself."""
    after, reply = transition.state, transition.reply
    if reply is None:
        return transition  # an effect is under way: `resume` answers
    was = before.data.get(facilitator.ROLE_KEY)
    role = after.context.facilitator
    now = None if role is None else role.id
    relabelled = role is not None and before.language != after.language
    if was == now and not relabelled:
        return transition
    menu = CommandMenu.CITIZEN if role is None else CommandMenu.FACILITATOR
    return replace(transition, reply=replace(reply, menu=menu))


def _stamped(state: DialogState, offered: tuple[str, ...]) -> DialogState:
    """The state with the choices it offers, and with the facilitator it works for."""
    role = state.context.facilitator
    if role is None or state.data.get(facilitator.ROLE_KEY) == role.id:
        return replace(state, offered=offered)
    data = MappingProxyType({**state.data, facilitator.ROLE_KEY: role.id})
    return replace(state, offered=offered, data=data)


def _home(state: DialogState) -> DialogState:
    return state.at("menu" if state.consented else "consent")


def _command(state: DialogState, name: str, t: Translator, argument: str = "") -> Transition:
    command = COMMANDS.get(name.lower())
    if command is None:
        return Transition(
            state,
            notice=Notice(
                t.gettext(
                    "Unknown command. Use /cek, /usul, /sanggah, /perbaiki, /tiket, /langganan, "
                    "/berhenti, /bahasa, /bantuan, /privasi, /data_saya, /hapus_data or /batal."
                ),
                t.gettext("Unknown command."),
            ),
        )
    if command in ("start", "home"):
        return Transition(_home(state))
    if command == "back":
        return Transition(_back(state))
    if command in _NEEDS_CONSENT and not state.consented:
        return Transition(_home(state))
    if command == "check":
        return Transition(state.at("status.nik"))
    if command == "proposal":
        if not state.context.photos:
            return Transition(state, notice=_needs_photos_notice(t))
        return filing.start_filing(state, "proposal")
    if command == "objection":
        return filing.start_objection(state)
    if command == "correction":
        return filing.start_filing(state, "correction")
    if command == "tickets":
        return tickets.list_tickets(state)
    if command == "subscribe":
        return subscribe.start(state)
    if command == "notices":
        return subscribe.notices_menu(state)
    if command == "unsubscribe":
        return subscribe.list_subscriptions(state)
    if command == "privacy":
        return Transition(state.at("privacy"))
    if command == "mydata":
        return my_data.show(state)
    if command == "erase":
        return my_data.ask_to_erase(state)
    if command == "facilitator":
        return facilitator.start_activation(state, argument, t)
    if command == "households":
        return facilitator.list_households(state, t)
    # language and help are detours: they come back to where the person was.
    return Transition(state.detour(command, _return_point(state)))


_NEEDS_CONSENT = frozenset(
    {
        "check",
        "proposal",
        "objection",
        "correction",
        "tickets",
        "privacy",
        "subscribe",
        "unsubscribe",
        "notices",
        "facilitator",
        "households",
    }
)


def _needs_photos_notice(t: Translator) -> Notice:
    return Notice(
        t.gettext(
            "A proposal needs photos of the house. File it in our Telegram bot, or ask a "
            "PKH facilitator to file it for you."
        ),
        t.gettext("A proposal needs photos: use Telegram or a PKH facilitator."),
    )


def _return_point(state: DialogState) -> str:
    if state.step in _DETOURS:
        return state.text("return_to") or "menu"
    if state.step in _RETURNABLE:
        return state.step
    return _home(state).step


def _back(state: DialogState) -> DialogState:
    if state.step in _DETOURS:
        return state.back_from_detour()
    if state.step in WAITING_STEPS:
        return state
    if state.step in _FILING_STEPS:
        return filing.filing_back(state)
    target = _BACK.get(state.step, "menu")
    if target == "menu" and not state.consented:
        target = "consent"
    return state.at(target)


def _resolve_number(state: DialogState, inp: Input) -> Input:
    """A short number typed where choices were offered picks that choice (2 = second)."""
    text = inp.value.strip()
    if inp.kind is not InputKind.TEXT or not state.offered:
        return inp
    # ASCII digits only: "²" and "①" are digits to str.isdigit() but not to int().
    if text.isascii() and text.isdigit() and len(text) <= _MAX_CHOICE_DIGITS:
        number = int(text)
        if 1 <= number <= len(state.offered):
            return Input(InputKind.CHOICE, state.offered[number - 1])
    return inp


def _not_usable(state: DialogState, inp: Input, t: Translator) -> Transition:
    """The same step again, with a notice saying what was wrong with the input."""
    prompt = prompt_for(state)
    if prompt.expects is Expect.NOTHING:  # e.g. waiting for the registry: just say so
        return Transition(state, reply=prompt)
    if prompt.expects is Expect.PHOTO:
        return Transition(
            state, notice=Notice(t.gettext("Please send a photo here (JPEG, PNG or WebP)."))
        )
    if prompt.expects is Expect.LOCATION:
        return Transition(
            state,
            notice=Notice(
                t.gettext("Please share a location (paperclip, then Location), or press Skip.")
            ),
        )
    if inp.kind in (InputKind.PHOTO, InputKind.FILE, InputKind.OTHER):
        return Transition(state, notice=Notice(t.gettext("We do not need a photo or a file here.")))
    if inp.kind is InputKind.LOCATION:
        return Transition(state, notice=Notice(t.gettext("We do not need a location here.")))
    if prompt.expects is Expect.CHOICE:
        count = len(prompt.choices)
        notice = Notice(
            t.gettext(
                "Please choose one of the options (reply with its number, 1–{count})."
            ).format(count=count),
            t.gettext("Please choose 1–{count}.").format(count=count),
        )
        return Transition(state, notice=notice)
    return Transition(state, notice=Notice(t.gettext("Please type your answer as text.")))
