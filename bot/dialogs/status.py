"""The status check: NIK, then name, then the registry's answer."""

from __future__ import annotations

import re

from bot.dialogs.facilitator import area_problem
from bot.dialogs.model import (
    Choice,
    DialogState,
    Expect,
    Input,
    InputKind,
    Notice,
    Reply,
    StatusLookup,
    Transition,
)
from bot.dialogs.status_report import render_report
from bot.i18n import Translator
from bot.lookup import LookupFailure, LookupOutcome, Throttled, ThrottleReason
from bot.nik import InvalidNik, NikProblem, parse_nik

# After a household was found, its NIK and name stay (sealed, until the step expires) so
# that an objection to the result needs no retyping.
CHECKED_NIK = "checked_nik"
CHECKED_NAME = "checked_name"
OBJECT_TO_RESULT = "object_status"
SUBSCRIBE_TO_RESULT = "subscribe_result"

NAME_MAX_LENGTH = 100
# Letters of any script, spaces and the punctuation found in names on KTPs.
_NAME_PATTERN = re.compile(r"[^\W\d_]+(?:[ .,'’`\-]+[^\W\d_]*)*\.?")


def nik_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext("Type the NIK: the 16 digits on the KTP or the family card (KK)."),
        brief=t.gettext("Enter the NIK (16 digits, as on the KTP):"),
        expects=Expect.TEXT,
    )


def handle_nik(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    return typed_nik(state, inp, t, then="status.name")


def typed_nik(state: DialogState, inp: Input, t: Translator, *, then: str) -> Transition | None:
    """A typed NIK moves on to `then` (kept in the working data), or says what is wrong."""
    if inp.kind is not InputKind.TEXT:
        return None
    try:
        nik = parse_nik(inp.value)
    except InvalidNik as problem:
        return Transition(state, notice=nik_problem_notice(problem, t))
    outside = area_problem(state, nik.value, t)
    if outside is not None:
        return Transition(state, notice=outside)
    return Transition(state.at(then, nik=nik.value))


def nik_problem_notice(problem: InvalidNik, t: Translator) -> Notice:
    if problem.problem is NikProblem.WRONG_LENGTH:
        text = t.ngettext(
            "A NIK has 16 digits; you typed {count} digit.",
            "A NIK has 16 digits; you typed {count} digits.",
            problem.digits,
        ).format(count=problem.digits)
        return Notice(text)
    messages = {
        NikProblem.EMPTY: (t.gettext("You did not type a NIK."), None),
        NikProblem.NOT_DIGITS: (
            t.gettext("A NIK has only digits. Type the 16 digits without letters."),
            t.gettext("A NIK has only digits."),
        ),
        NikProblem.BAD_BIRTH_DATE: (
            t.gettext(
                "Digits 7 to 12 of a NIK are a date of birth, and this one is impossible. "
                "Please check the NIK."
            ),
            t.gettext("The birth date in this NIK is impossible."),
        ),
        NikProblem.UNKNOWN_PROVINCE: (
            t.gettext(
                "The first two digits of a NIK are a province code, and no province has "
                "this one. Please check the NIK."
            ),
            t.gettext("This NIK has no valid province code."),
        ),
    }
    text, brief = messages[problem.problem]
    return Notice(text, brief)


def name_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext("Now type the full name exactly as written on the KTP."),
        brief=t.gettext("Enter the full name as on the KTP:"),
        expects=Expect.TEXT,
    )


def handle_name(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    return typed_name(state, inp, t, waiting="status.waiting", lost="status.nik")


def typed_name(
    state: DialogState, inp: Input, t: Translator, *, waiting: str, lost: str
) -> Transition | None:
    """A typed name with the NIK before it asks the registry (the step waits at `waiting`);
    without the NIK (an expired step) the NIK is asked again at `lost`."""
    if inp.kind is not InputKind.TEXT:
        return None
    name = " ".join(inp.value.split())
    problem = name_problem(name, t)
    if problem is not None:
        return Transition(state, notice=problem)
    nik = state.text("nik")
    if nik is None:  # the NIK was lost (expired step): ask again rather than guess
        return Transition(state.at(lost))
    return Transition(
        state.at(waiting, nik=nik, name=name), effect=StatusLookup(nik=nik, name=name)
    )


def name_problem(name: str, t: Translator) -> Notice | None:
    """Why a typed name cannot be a name on a KTP, or None when it can."""
    if any(ch.isdigit() for ch in name):
        return Notice(
            t.gettext("A name has no digits. Type the name as written on the KTP."),
            t.gettext("A name has no digits."),
        )
    letters = sum(ch.isalpha() for ch in name)
    if letters < 2:
        return Notice(t.gettext("That name is too short."))
    if len(name) > NAME_MAX_LENGTH:
        return Notice(t.gettext("That name is too long."))
    if not _NAME_PATTERN.fullmatch(name):
        return Notice(
            t.gettext("Use only letters, spaces and . , ' - in a name."),
        )
    return None


def waiting_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Still checking, please wait a moment…"))


def resume_lookup(state: DialogState, outcome: LookupOutcome, t: Translator) -> Transition:
    """Turn the registry's answer into the reply. The NIK and name leave the state here,
    unless a household was found: then they stay for an objection to the result."""
    again = (Choice("check", t.gettext("Check another NIK")), Choice("home", t.gettext("Menu")))
    if isinstance(outcome, LookupFailure | Throttled):
        return Transition(state.at("menu"), reply=failure_reply(outcome, t, again))
    nik, name = state.text("nik"), state.text("name")
    if nik is None or name is None:
        return Transition(state.at("menu"), reply=render_report(outcome, t, again))
    found = state.at("menu", **{CHECKED_NIK: nik, CHECKED_NAME: name})
    choices = (
        again[0],
        Choice(SUBSCRIBE_TO_RESULT, t.gettext("Notify me of changes")),
        Choice(OBJECT_TO_RESULT, t.gettext("Object to this result")),
        again[1],
    )
    return Transition(found, reply=render_report(outcome, t, choices))


def failure_reply(
    failure: LookupFailure | Throttled, t: Translator, again: tuple[Choice, ...]
) -> Reply:
    if isinstance(failure, Throttled):
        return throttled_reply(failure, t, again[1:])
    if failure is LookupFailure.NOT_FOUND:
        return Reply(
            text=t.gettext(
                "No record matches this NIK and name. Check that both are exactly as on the "
                "KTP. If they are, the household may not be in DTSEN yet: the village or "
                "kelurahan office can file a proposal (usulan) to include it."
            ),
            brief=t.gettext(
                "No record matches this NIK and name. Check both against the KTP, or ask "
                "the village office about a proposal (usulan)."
            ),
            choices=again,
        )
    return Reply(
        text=t.gettext(
            "The registry cannot be reached right now. Nothing is wrong with your data: "
            "please try again in a few minutes."
        ),
        brief=t.gettext("The registry is busy. Please try again in a few minutes."),
        choices=again,
    )


def throttled_reply(refusal: Throttled, t: Translator, choices: tuple[Choice, ...]) -> Reply:
    """Say why, and when a try can pass: a person told "later" tries again at once."""
    when = wait_words(refusal.retry_after_s, t)
    if refusal.reason is ThrottleReason.NIK:
        return Reply(
            text=t.gettext(
                "This NIK has been checked too many times today with a name that did not "
                "match, so it is locked to protect its owner. Please try again {when}. The "
                "owner can still check it from a chat or phone that checked it successfully "
                "before."
            ).format(when=when),
            brief=t.gettext("This NIK is locked after wrong names. Try again {when}.").format(
                when=when
            ),
            choices=choices,
        )
    if refusal.reason is ThrottleReason.BUSY:
        return Reply(
            text=t.gettext("The service is very busy. Please try again {when}.").format(when=when),
            choices=choices,
        )
    return Reply(
        text=t.gettext(
            "You have made many checks. To protect everyone's data, please try again {when}."
        ).format(when=when),
        brief=t.gettext("Too many checks. Please try again {when}.").format(when=when),
        choices=choices,
    )


def wait_words(seconds: int, t: Translator) -> str:
    """ "in 7 minutes", "in 3 hours": rounded up, so the person never comes back too early."""
    minutes = max(1, -(-seconds // 60))
    if minutes < 120:
        return t.ngettext("in {n} minute", "in {n} minutes", minutes).format(n=minutes)
    hours = -(-minutes // 60)
    return t.ngettext("in {n} hour", "in {n} hours", hours).format(n=hours)
