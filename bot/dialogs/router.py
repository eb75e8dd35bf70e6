"""One entry point for every dialog: route an input to the step it belongs to.

`step` and `resume` are pure: (state, input) → transition. Commands that work anywhere
(/start, /cek, /bahasa, /bantuan, /privasi, /batal, USSD `0` and `00`) are handled here,
and so is every input a step cannot use: it gets a clear notice and the same prompt again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bot.dialogs.consent import consent_prompt, handle_consent, handle_privacy, privacy_prompt
from bot.dialogs.language import handle_language, language_prompt
from bot.dialogs.menu import handle_menu, help_prompt, menu_prompt
from bot.dialogs.model import (
    DialogState,
    Expect,
    Input,
    InputKind,
    LookupOutcome,
    Notice,
    Reply,
    Transition,
)
from bot.dialogs.status import (
    handle_name,
    handle_nik,
    name_prompt,
    nik_prompt,
    resume_lookup,
    waiting_prompt,
)
from bot.i18n import DEFAULT_LANGUAGE, Translator, translator

Prompt = Callable[[DialogState, Translator], Reply]
Handler = Callable[[DialogState, Input, Translator], Transition | None]


def _ignores(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    return None


STEPS: dict[str, tuple[Prompt, Handler]] = {
    "menu": (menu_prompt, handle_menu),
    "consent": (consent_prompt, handle_consent),
    "privacy": (privacy_prompt, handle_privacy),
    "language": (language_prompt, handle_language),
    "help": (help_prompt, _ignores),
    "status.nik": (nik_prompt, handle_nik),
    "status.name": (name_prompt, handle_name),
    "status.waiting": (waiting_prompt, _ignores),
}

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
}

# Where "back" leads from each step (steps that remember their origin use it instead).
_BACK = {
    "status.name": "status.nik",
    "status.nik": "menu",
    "privacy": "menu",
    "consent": "consent",
    "menu": "menu",
}
# Steps a detour (language, help) may come back to: their working data survives it.
_RETURNABLE = ("menu", "consent", "privacy", "status.nik", "status.name")

# Numbered answers are short; a longer run of digits is data (a NIK), not a choice.
_MAX_CHOICE_DIGITS = 2


def new_state(language: str = DEFAULT_LANGUAGE) -> DialogState:
    return DialogState(step="consent", language=language)


def prompt_for(state: DialogState) -> Reply:
    prompt, _ = STEPS.get(state.step, STEPS["menu"])
    return prompt(state, translator(state.language))


def step(state: DialogState, inp: Input) -> Transition:
    """The next state and reply for one input."""
    if state.step not in STEPS:
        state = _home(state)
    t = translator(state.language)
    inp = _resolve_number(state, inp)
    if inp.kind is InputKind.START:
        return _finish(Transition(_home(state)))
    if inp.kind is InputKind.COMMAND or (
        inp.kind is InputKind.CHOICE and inp.value in COMMANDS and inp.value in state.offered
    ):
        return _finish(_command(state, inp.value, t))
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


def resume(state: DialogState, outcome: LookupOutcome) -> Transition:
    """Continue after the registry answered a StatusLookup."""
    transition = resume_lookup(state, outcome, translator(state.language))
    return _finish(transition)


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
    return replace(transition, state=replace(transition.state, offered=offered), reply=reply)


def _home(state: DialogState) -> DialogState:
    return state.at("menu" if state.consented else "consent")


def _command(state: DialogState, name: str, t: Translator) -> Transition:
    command = COMMANDS.get(name.lower())
    if command is None:
        return Transition(
            state,
            notice=Notice(
                t.gettext("Unknown command. Use /cek, /bahasa, /bantuan, /privasi or /batal."),
                t.gettext("Unknown command."),
            ),
        )
    if command in ("start", "home"):
        return Transition(_home(state))
    if command == "back":
        return Transition(_back(state))
    if command == "check":
        return Transition(state.at("status.nik") if state.consented else _home(state))
    if command == "privacy":
        return Transition(state.at("privacy") if state.consented else _home(state))
    # language and help are detours: they come back to where the person was.
    return Transition(state.detour(command, _return_point(state)))


def _return_point(state: DialogState) -> str:
    if state.step in ("language", "help"):
        return state.data.get("return_to", "menu")
    if state.step in _RETURNABLE:
        return state.step
    return _home(state).step


def _back(state: DialogState) -> DialogState:
    if state.step in ("language", "help"):
        return state.back_from_detour()
    if state.step == "status.waiting":
        return state
    target = _BACK.get(state.step, "menu")
    if target == "menu" and not state.consented:
        target = "consent"
    return state.at(target)


def _resolve_number(state: DialogState, inp: Input) -> Input:
    """A short number typed where choices were offered picks that choice (2 = second)."""
    text = inp.value.strip()
    if inp.kind is not InputKind.TEXT or not state.offered:
        return inp
    if text.isdigit() and len(text) <= _MAX_CHOICE_DIGITS:
        number = int(text)
        if 1 <= number <= len(state.offered):
            return Input(InputKind.CHOICE, state.offered[number - 1])
    return inp


def _not_usable(state: DialogState, inp: Input, t: Translator) -> Transition:
    """The same step again, with a notice saying what was wrong with the input."""
    prompt = prompt_for(state)
    if prompt.expects is Expect.NOTHING:  # e.g. waiting for the registry: just say so
        return Transition(state, reply=prompt)
    if inp.kind in (InputKind.PHOTO, InputKind.OTHER):
        return Transition(state, notice=Notice(t.gettext("We do not need a photo or a file here.")))
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
