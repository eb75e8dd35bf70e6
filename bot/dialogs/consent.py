"""Privacy notice and consent: nothing personal is processed before the person agrees."""

from __future__ import annotations

from dataclasses import replace

from bot.dialogs import my_data
from bot.dialogs.model import (
    CONSENT_VERSION,
    Choice,
    DialogState,
    Expect,
    Input,
    InputKind,
    Notice,
    Reply,
    Transition,
)
from bot.i18n import Translator


def privacy_notice(state: DialogState, t: Translator) -> str:
    """The whole notice: what is processed, why, and exactly what is kept for how long."""
    return "\n".join(
        [
            t.gettext(
                "What we process: the NIK and the name as written on the KTP that you type "
                "here, to find the household in DTSEN (the national social-economic "
                "registry); and what you file (a proposal, an objection or a correction, "
                "with its photos), to send it to DTSEN."
            ),
            t.gettext(
                "Why: to tell you your social-aid status and to carry your filings to the "
                "registry. Nothing else."
            ),
            t.gettext("What we keep, and for how long:"),
            *keeping_lines(state, t),
            t.gettext(
                "This service is FREE. We never ask for money, a PIN, a password or an OTP "
                "code. Never give them to anyone who asks in the name of social aid."
            ),
            t.gettext(
                "Legal basis: Law No. 27/2022 on Personal Data Protection. See what we hold "
                "with /data_saya. Withdraw your consent and erase your data at any time with "
                "/hapus_data."
            ),
        ]
    )


def keeping_lines(state: DialogState, t: Translator) -> list[str]:
    """One line per thing kept. Short enough for a 160-character USSD screen each."""
    minutes = state.context.idle_minutes
    days = state.context.photo_retention_days
    return [
        t.ngettext(
            "- NIK and name typed for a check: until it ends, or {n} minute idle.",
            "- NIK and name typed for a check: until it ends, or {n} minutes idle.",
            minutes,
        ).format(n=minutes),
        t.gettext(
            "- How many checks per account and per NIK (kept in code), against abuse: 2 days."
        ),
        t.gettext(
            "- If the name matched: that NIK and your account, in code, 90 days, so others' "
            "wrong guesses cannot lock you out."
        ),
        t.ngettext(
            "- Filings: locked (encrypted) until you erase them. Photos: {n} day after DTSEN "
            "gets them.",
            "- Filings: locked (encrypted) until you erase them. Photos: {n} days after DTSEN "
            "gets them.",
            days,
        ).format(n=days),
        t.gettext("- Change notices: the NIK, locked (encrypted), until you stop them."),
        t.gettext("- Language and consent: until you erase your data."),
    ]


def consent_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext("Welcome to the DTSEN social-aid status check.")
        + "\n\n"
        + privacy_notice(state, t)
        + "\n\n"
        + t.gettext("Do you agree?"),
        brief=t.gettext("DTSEN aid check by NIK & name. Free: no money/PIN/OTP."),
        choices=(
            Choice("agree", t.gettext("Agree, check status")),
            Choice("decline", t.gettext("Disagree")),
            Choice("language", "Bahasa/Language"),
            Choice(DETAILS, t.gettext("What we keep")),
        ),
        expects=Expect.CHOICE,
    )


DETAILS = "keeping"
DETAILS_STEP = "privacy.details"
MORE = "more"
DONE = "done"


def show_details(state: DialogState) -> Transition:
    """What is kept, from the consent or privacy screen, coming back there after."""
    return Transition(state.detour(DETAILS_STEP, state.step).at_page(0))


def details_prompt(state: DialogState, t: Translator) -> Reply:
    """The whole list where screens are large; one line per screen on USSD."""
    lines = keeping_lines(state, t)
    title = t.gettext("What we keep, and for how long:")
    back = Choice(DONE, t.gettext("Back"))
    if state.context.photos:
        return Reply(text="\n".join([title, *lines]), choices=(back,), expects=Expect.CHOICE)
    page = min(max(_page(state), 0), len(lines) - 1)
    more = (Choice(MORE, t.gettext("More")),) if page < len(lines) - 1 else ()
    return Reply(text=lines[page], choices=(*more, back), expects=Expect.CHOICE)


def handle_details(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is not InputKind.CHOICE:
        return None
    if inp.value == MORE:
        return Transition(state.at_page(_page(state) + 1))
    if inp.value == DONE:
        return Transition(state.back_from_detour())
    return None


def _page(state: DialogState) -> int:
    page = state.data.get("page")
    return page if isinstance(page, int) else 0


def handle_consent(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is not InputKind.CHOICE:
        return None
    if inp.value == DETAILS:
        return show_details(state)
    if inp.value == "agree":
        agreed = replace(state, consent_version=CONSENT_VERSION).at("status.nik")
        return Transition(agreed, notice=Notice(t.gettext("Thank you.")))
    if inp.value == "decline":
        declined = replace(state, consent_version=None).at("consent")
        return Transition(
            declined,
            reply=Reply(
                text=t.gettext(
                    "All right: we process none of your data. "
                    "Send /start whenever you change your mind."
                ),
                brief=t.gettext("All right: we process none of your data. Thank you."),
            ),
        )
    return None


def privacy_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=privacy_notice(state, t) + "\n\n" + t.gettext("You have agreed. Keep your consent?"),
        brief=t.gettext("Privacy: see what we keep or hold, or erase it. Free: no money/PIN/OTP."),
        brief_gives_way=True,  # a notice above four choices leaves no room for both
        choices=(
            Choice("keep", t.gettext("Keep consent")),
            Choice(DETAILS, t.gettext("What we keep")),
            Choice("mydata", t.gettext("See my data")),
            Choice("withdraw", t.gettext("Withdraw consent and erase")),
        ),
        expects=Expect.CHOICE,
    )


def handle_privacy(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is not InputKind.CHOICE:
        return None
    if inp.value == "keep":
        return Transition(state.at("menu"))
    if inp.value == DETAILS:
        return show_details(state)
    if inp.value == "mydata":
        return my_data.show(state)
    if inp.value == "withdraw":
        return my_data.ask_to_erase(state, withdrawing=True)
    return None
