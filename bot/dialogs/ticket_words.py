"""Plain words for filing kinds, ticket stages and reasons, in the person's language."""

from __future__ import annotations

from bot.i18n import N_, Translator

_KINDS = {
    "proposal": N_("Proposal"),
    "objection": N_("Objection"),
    "correction": N_("Correction"),
}

_STAGES = {
    "queued": N_("waiting to be sent to DTSEN"),
    "received": N_("received by DTSEN"),
    "in_verification": N_("being checked in the field"),
    "accepted": N_("accepted"),
    "rejected": N_("rejected"),
    "withdrawn": N_("withdrawn"),
    "refused": N_("not accepted by DTSEN"),
}

# Why a checked ticket was rejected (the registry's reason codes).
_REJECTIONS = {
    "evidence_insufficient": N_("the evidence was not enough to change the data"),
    "field_check_disagrees": N_("the field check found the registry's data to be right"),
    "outside_criteria": N_("the household does not meet the programme's criteria"),
    "duplicate": N_("the same request was already filed"),
}

# Why the registry refused a filing outright (HTTP 422 codes).
_REFUSALS = {
    "invalid_nik": N_("the NIK is not known to the population register"),
    "photo_missing": N_("a required photo was missing"),
    "photo_unreadable": N_("a photo could not be read"),
    "duplicate_open_ticket": N_("an open ticket already exists for this household"),
    "outside_area": N_("you do not live in the same area as the recipient"),
}


def kind_label(kind: str, t: Translator) -> str:
    return t.gettext(_KINDS[kind]) if kind in _KINDS else kind


def stage_label(stage: str, t: Translator) -> str:
    return t.gettext(_STAGES[stage]) if stage in _STAGES else t.gettext("updated")


def reason_words(stage: str, code: str | None, t: Translator) -> str | None:
    """Why a ticket ended as it did, in plain words; None when there is nothing to say."""
    if code is None:
        return None
    table = _REFUSALS if stage == "refused" else _REJECTIONS
    if code in table:
        return t.gettext(table[code])
    return t.gettext("a reason the registry gave without details")
