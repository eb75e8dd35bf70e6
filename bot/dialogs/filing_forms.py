"""The four filing forms as data: which fields each asks, in which order, and how the
answers become a FilingDraft. One walker (bot/dialogs/filing.py) runs them all.

Strings are marked with N_ here and translated where they are shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.filings import FilingDraft, FilingKind, FilingPhoto, Location
from bot.i18n import N_

Values = Mapping[str, str]


class FieldKind(StrEnum):
    NIK = "nik"
    KK = "kk"
    NAME = "name"
    TEXT = "text"
    CHOICE = "choice"
    PHOTO = "photo"  # photos of one role: `least` to `most` of them
    LOCATION = "location"


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    label: str
    needs_photo: bool = False  # offered only where the channel can take photos


def _always(values: Values) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    kind: FieldKind
    label: str  # short, for the review screen and the "change which?" menu
    prompt: str
    brief: str | None = None  # the prompt on a small screen
    options: tuple[Option, ...] = ()
    optional: bool = False  # a Skip choice is offered
    least: int = 1  # photos of this role, at least (when not optional) …
    most: int = 1  # … and at most
    visible: Callable[[Values], bool] = _always
    # The prompt for a facilitator filing for a household, where `prompt` says "your".
    on_behalf: str | None = None

    @property
    def role(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class Form:
    key: str
    kind: FilingKind
    title: str
    fields: tuple[Field, ...]
    to_draft: Callable[[Values, tuple[FilingPhoto, ...], Location | None, str], FilingDraft]

    def field(self, key: str) -> Field | None:
        return next((f for f in self.fields if f.key == key), None)

    def visible_fields(self, values: Values) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.visible(values))


def _nik_field(
    key: str,
    prompt: str,
    label: str = N_("NIK"),
    visible: Callable[[Values], bool] = _always,
    on_behalf: str | None = None,
) -> Field:
    return Field(
        key,
        FieldKind.NIK,
        label,
        prompt,
        brief=N_("Enter the NIK (16 digits, as on the KTP):"),
        visible=visible,
        on_behalf=on_behalf,
    )


_SUBJECT_NAME = Field(
    "name",
    FieldKind.NAME,
    N_("Name"),
    N_("Type the full name exactly as written on the KTP."),
    brief=N_("Enter the full name as on the KTP:"),
)


def _house_location() -> Field:
    """Where the house is, for the field check to find it: shared from the phone."""
    return Field(
        "location",
        FieldKind.LOCATION,
        N_("Location"),
        N_(
            "If you can, share the location of the house: tap the paperclip, then "
            "Location. Or skip this step."
        ),
        optional=True,
    )


# --- proposal (usulan): include a household -----------------------------------------------

_PROGRAMMES = (
    Option("PKH", N_("PKH (family hope programme)")),
    Option("BPNT", N_("BPNT/Sembako (food aid)")),
    Option("PBI-JK", N_("PBI-JK (free health insurance)")),
    Option("BLT", N_("BLT (direct cash aid)")),
    Option("PIP", N_("PIP (school aid)")),
)


def _proposal_draft(
    values: Values, photos: tuple[FilingPhoto, ...], location: Location | None, language: str
) -> FilingDraft:
    return FilingDraft(
        kind="proposal",
        language=language,
        subject_nik=values["nik"],
        subject_name=values["name"],
        subject_kk=values["kk"],
        fields={"address": values["address"], "programme": values["programme"]},
        photos=photos,
        location=location,
    )


PROPOSAL = Form(
    "proposal",
    "proposal",
    N_("Proposal to include a household"),
    (
        _nik_field("nik", N_("Type the NIK of the head of the household (16 digits).")),
        Field(
            "kk",
            FieldKind.KK,
            N_("KK number"),
            N_("Type the number of the family card (KK): 16 digits at the top of the card."),
        ),
        _SUBJECT_NAME,
        Field(
            "address",
            FieldKind.TEXT,
            N_("Address"),
            N_("Type the household's address: street, RT/RW, village."),
        ),
        Field(
            "programme",
            FieldKind.CHOICE,
            N_("Programme"),
            N_(
                "Proposing a household is free: this service never asks for money, a PIN "
                "or an OTP code. Which programme is the household asking for?"
            ),
            options=_PROGRAMMES,
        ),
        Field(
            "house_front",
            FieldKind.PHOTO,
            N_("Photo of the house front"),
            N_("Send a photo of the front of the house."),
        ),
        Field(
            "house_inside",
            FieldKind.PHOTO,
            N_("Photo inside the house"),
            N_("Send a photo of the inside of the house (the main room)."),
        ),
        Field(
            "ktp_selfie",
            FieldKind.PHOTO,
            N_("Selfie with the KTP"),
            N_(
                "If you can, send a selfie holding the KTP. It helps the check, "
                "but you may skip it."
            ),
            optional=True,
        ),
        _house_location(),
    ),
    _proposal_draft,
)

# --- objection (sanggahan), sort a: my own status is wrong --------------------------------

_OWN_REASONS = (
    Option("decile_wrong", N_("My welfare level (decile) is wrong")),
    Option("aid_stopped", N_("My aid stopped")),
    Option("not_listed", N_("I am not in any programme")),
    Option("other", N_("Something else")),
)


def _own_objection_draft(
    values: Values, photos: tuple[FilingPhoto, ...], location: Location | None, language: str
) -> FilingDraft:
    return FilingDraft(
        kind="objection",
        language=language,
        subject_nik=values["nik"],
        subject_name=values["name"],
        reason_code=values["reason"],
        text=values["explanation"],
        fields={"sort": "own_status"},
    )


OBJECTION_OWN = Form(
    "objection_own",
    "objection",
    N_("Objection: my own status is wrong"),
    (
        _nik_field(
            "nik",
            N_("Type your NIK: the 16 digits on your KTP."),
            on_behalf=N_("Type the NIK of the person whose status is wrong (16 digits)."),
        ),
        _SUBJECT_NAME,
        Field(
            "reason",
            FieldKind.CHOICE,
            N_("Reason"),
            N_("What is wrong?"),
            options=_OWN_REASONS,
        ),
        Field(
            "explanation",
            FieldKind.TEXT,
            N_("Explanation"),
            N_("Explain in a few sentences what is wrong and what is true."),
            brief=N_("Explain briefly what is wrong:"),
        ),
    ),
    _own_objection_draft,
)

# --- objection (sanggahan), sort b: a listed recipient is not eligible --------------------

_IDENTIFY_BY = (
    Option("nik", N_("I know their NIK")),
    Option("name", N_("I know their name and address")),
)
_RECIPIENT_REASONS = (
    Option("owns_car", N_("Owns a car")),
    Option("large_house", N_("Large permanent house")),
    Option("civil_servant", N_("Civil servant, police or army")),
    Option("moved_away", N_("Moved away")),
    Option("deceased", N_("Has died")),
    Option("other", N_("Other reason")),
)


def _by_nik(values: Values) -> bool:
    return values.get("identify_by") == "nik"


def _by_name(values: Values) -> bool:
    return values.get("identify_by") == "name"


def _recipient_objection_draft(
    values: Values, photos: tuple[FilingPhoto, ...], location: Location | None, language: str
) -> FilingDraft:
    fields = {"sort": "recipient_not_eligible"}
    if "address" in values:
        fields["address"] = values["address"]
    return FilingDraft(
        kind="objection",
        language=language,
        subject_nik=values.get("nik"),
        subject_name=values.get("name"),
        reason_code=values["reason"],
        fields=fields,
        photos=photos,
        location=location,
        filer_kecamatan=values["filer_nik"][:6],
    )


OBJECTION_OTHER = Form(
    "objection_other",
    "objection",
    N_("Objection: a recipient is not eligible"),
    (
        _nik_field(
            "filer_nik",
            N_(
                "First your own NIK (16 digits). Objections are accepted only from people "
                "who live in the same area as the recipient."
            ),
            label=N_("Your NIK"),
            on_behalf=N_(
                "First the NIK of the person who objects (16 digits). They must live in the "
                "same area as the recipient."
            ),
        ),
        Field(
            "identify_by",
            FieldKind.CHOICE,
            N_("How the recipient is identified"),
            N_("What do you know about the recipient?"),
            options=_IDENTIFY_BY,
        ),
        _nik_field(
            "nik",
            N_("Type the recipient's NIK (16 digits)."),
            label=N_("Recipient's NIK"),
            visible=_by_nik,
        ),
        Field(
            "name",
            FieldKind.NAME,
            N_("Recipient's name"),
            N_("Type the recipient's full name."),
            visible=_by_name,
        ),
        Field(
            "address",
            FieldKind.TEXT,
            N_("Recipient's address"),
            N_("Type the recipient's address: street, RT/RW, village."),
            visible=_by_name,
        ),
        Field(
            "reason",
            FieldKind.CHOICE,
            N_("Reason"),
            N_("Why is this recipient not eligible?"),
            options=_RECIPIENT_REASONS,
        ),
        Field(
            "evidence",
            FieldKind.PHOTO,
            N_("Photos of the house"),
            N_("Send 1 to 3 photos of the recipient's house as evidence."),
            least=1,
            most=3,
        ),
        _house_location(),
    ),
    _recipient_objection_draft,
)

# --- correction (perbaikan data) -----------------------------------------------------------

_CORRECTIONS = (
    Option("member_born", N_("A child was born"), needs_photo=True),
    Option("member_died", N_("A member has died"), needs_photo=True),
    Option("member_moved", N_("A member moved out"), needs_photo=True),
    Option("address", N_("Address")),
    Option("occupation", N_("Occupation")),
    Option("house_condition", N_("House condition"), needs_photo=True),
)
CORRECTIONS_WITH_PHOTO = frozenset(o.key for o in _CORRECTIONS if o.needs_photo)


def _needs_document(values: Values) -> bool:
    return values.get("what") in CORRECTIONS_WITH_PHOTO


def _correction_draft(
    values: Values, photos: tuple[FilingPhoto, ...], location: Location | None, language: str
) -> FilingDraft:
    return FilingDraft(
        kind="correction",
        language=language,
        subject_nik=values["nik"],
        subject_name=values["name"],
        reason_code=values["what"],
        fields={"new_value": values["new_value"]},
        photos=photos,
    )


CORRECTION = Form(
    "correction",
    "correction",
    N_("Correction of household data"),
    (
        _nik_field("nik", N_("Type the NIK of a member of the household (16 digits).")),
        _SUBJECT_NAME,
        Field(
            "what",
            FieldKind.CHOICE,
            N_("What changes"),
            N_("What is wrong or has changed?"),
            options=_CORRECTIONS,
        ),
        Field(
            "new_value",
            FieldKind.TEXT,
            N_("New value"),
            N_("Type what is true now (for a member: their name and the date)."),
            brief=N_("Type what is true now:"),
        ),
        Field(
            "document",
            FieldKind.PHOTO,
            N_("Supporting photo"),
            N_(
                "Send a photo of a supporting document: the family card (KK), a birth or "
                "death certificate; for the house condition, a photo of the house."
            ),
            visible=_needs_document,
        ),
    ),
    _correction_draft,
)

FORMS: dict[str, Form] = {
    form.key: form for form in (PROPOSAL, OBJECTION_OWN, OBJECTION_OTHER, CORRECTION)
}
