"""Privacy notice and consent: nothing personal is processed before the person agrees."""

from __future__ import annotations

from dataclasses import replace

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


def privacy_notice(t: Translator) -> str:
    return t.gettext(
        "What we process: the NIK and the name as written on the KTP that you type here, "
        "to find the household in DTSEN (the national social-economic registry); and what "
        "you file (a proposal, an objection or a correction, with its photos), to send it "
        "to DTSEN.\n"
        "Why: to tell you your social-aid status and to carry your filings to the registry. "
        "Nothing else.\n"
        "How long: a NIK and name typed for a check are dropped when the check is done, or "
        "after 30 minutes without activity if you may still object to the result. To stop "
        "abuse, a one-way pseudonym of the NIK is kept for one hour. A filing is kept, "
        "sealed, so that you can follow its ticket. If you ask for change notices, the NIK "
        "is kept sealed until you stop them with /berhenti. We keep your language and your "
        "consent, linked to a pseudonym of your account.\n"
        "This service is FREE. We never ask for money, a PIN, a password or an OTP code. "
        "Never give them to anyone who asks in the name of social aid.\n"
        "Legal basis: Law No. 27/2022 on Personal Data Protection. You can withdraw your "
        "consent at any time with /privasi."
    )


def consent_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext("Welcome to the DTSEN social-aid status check.")
        + "\n\n"
        + privacy_notice(t)
        + "\n\n"
        + t.gettext("Do you agree?"),
        brief=t.gettext(
            "DTSEN aid check. NIK & name: for checks & filings only. Free: no money/PIN/OTP."
        ),
        choices=(
            Choice("agree", t.gettext("Agree, check status")),
            Choice("decline", t.gettext("Disagree")),
            Choice("language", "Bahasa/Language"),
        ),
        expects=Expect.CHOICE,
    )


def handle_consent(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is not InputKind.CHOICE:
        return None
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
        text=privacy_notice(t) + "\n\n" + t.gettext("You have agreed. Keep your consent?"),
        brief=t.gettext(
            "NIK & name: used for checks, kept only in filings. Free; no money/PIN/OTP."
        ),
        choices=(
            Choice("keep", t.gettext("Keep consent")),
            Choice("withdraw", t.gettext("Withdraw consent")),
        ),
        expects=Expect.CHOICE,
    )


def handle_privacy(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is not InputKind.CHOICE:
        return None
    if inp.value == "keep":
        return Transition(state.at("menu"))
    if inp.value == "withdraw":
        withdrawn = replace(state, consent_version=None).at("consent")
        return Transition(
            withdrawn,
            reply=Reply(
                text=t.gettext(
                    "Consent withdrawn. We will not process your NIK until you agree again. "
                    "Send /start to begin again."
                ),
                brief=t.gettext("Consent withdrawn. We will not process your NIK."),
            ),
        )
    return None
