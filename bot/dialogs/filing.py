"""Filing steps: walk a form field by field, review, change a field, confirm, ticket.

One walker serves every form of bot/dialogs/filing_forms.py. The draft lives in the
working data under "draft": the form, the answers, the photos' hashes and a location.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from bot.dialogs.facilitator import area_problem
from bot.dialogs.filing_forms import FORMS, Field, FieldKind, Form, Option
from bot.dialogs.model import (
    Choice,
    DialogState,
    Expect,
    Input,
    InputKind,
    JsonValue,
    Notice,
    PhotoOutcome,
    PhotoRefused,
    ReceivePhoto,
    Reply,
    SubmitFiling,
    Transition,
)
from bot.dialogs.status import name_problem, nik_problem_notice
from bot.dialogs.ticket_words import kind_label
from bot.filings import (
    AreaRule,
    FilingAccepted,
    FilingDraft,
    FilingOutcome,
    FilingPhoto,
    FilingRefusal,
    Location,
    same_area,
)
from bot.i18n import Translator
from bot.nik import InvalidNik, NikProblem, mask_nik, parse_nik

FIELD_STEP = "filing.field"
RECEIVING_STEP = "filing.receiving"
REVIEW_STEP = "filing.review"
CHANGE_STEP = "filing.change"
SORT_STEP = "filing.sort"
SUBMITTING_STEP = "filing.submitting"

TEXT_MIN_LETTERS = 3
TEXT_MAX_LENGTH = 500
_DONE, _SKIPPED = "done", "skipped"
_SUMMARY_TEXT_CHARS = 60


@dataclass(frozen=True, slots=True)
class Draft:
    """The answers so far, as kept in the working data between steps."""

    form: str
    values: dict[str, str] = field(default_factory=dict)
    photos: tuple[tuple[str, str], ...] = ()  # (sha256, role)
    location: tuple[float, float] | None = None
    at: str | None = None  # the field being asked
    editing: bool = False  # a change from the review: go back there afterwards

    @classmethod
    def of(cls, state: DialogState) -> Draft | None:
        raw = state.data.get("draft")
        if not isinstance(raw, dict) or raw.get("form") not in FORMS:
            return None
        values, photos, location, at = (raw.get(k) for k in ("values", "photos", "location", "at"))
        return cls(
            form=str(raw["form"]),
            values={str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {},
            photos=tuple(
                (str(p[0]), str(p[1]))
                for p in (photos if isinstance(photos, list) else [])
                if isinstance(p, list) and len(p) == 2
            ),
            location=_pair(location),
            at=at if isinstance(at, str) else None,
            editing=raw.get("editing") is True,
        )

    def data(self) -> dict[str, JsonValue]:
        return {
            "form": self.form,
            "values": dict(self.values),
            "photos": [[sha, role] for sha, role in self.photos],
            "location": list(self.location) if self.location else None,
            "at": self.at,
            "editing": self.editing,
        }

    @property
    def spec(self) -> Form:
        return FORMS[self.form]

    def photos_of(self, role: str) -> int:
        return sum(1 for _, r in self.photos if r == role)

    def answered(self, f: Field) -> bool:
        return f.key in self.values

    def answer(self, key: str, value: str) -> Draft:
        return replace(self, values={**self.values, key: value})

    def forget(self, f: Field) -> Draft:
        values = {k: v for k, v in self.values.items() if k != f.key}
        photos = self.photos
        location = self.location
        if f.kind is FieldKind.PHOTO:
            photos = tuple(p for p in self.photos if p[1] != f.role)
        if f.kind is FieldKind.LOCATION:
            location = None
        return replace(self, values=values, photos=photos, location=location)


def _pair(value: JsonValue) -> tuple[float, float] | None:
    if isinstance(value, list) and len(value) == 2:
        lat, lon = value
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            return (float(lat), float(lon))
    return None


def _with(state: DialogState, step: str, draft: Draft) -> DialogState:
    return state.at(step, draft=draft.data())


# --- starting ------------------------------------------------------------------------------


def start_filing(
    state: DialogState, form_key: str, prefill: dict[str, str] | None = None
) -> Transition:
    """Begin a form; `prefill` holds answers known already (a NIK and name just checked)."""
    draft = Draft(form=form_key, values=dict(prefill or {}))
    return _advance(state, draft)


def start_objection(state: DialogState) -> Transition:
    """Objections come in two sorts; a channel without photos offers only the first."""
    if not state.context.photos:
        return start_filing(state, "objection_own")
    return Transition(state.at(SORT_STEP))


def sort_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext("What is the objection about?"),
        choices=(
            Choice(
                "objection_own",
                t.gettext("The household's own status is wrong")
                if state.context.facilitator is not None
                else t.gettext("My own status is wrong"),
            ),
            Choice("objection_other", t.gettext("A listed recipient is not eligible")),
        ),
        expects=Expect.CHOICE,
    )


def handle_sort(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is InputKind.CHOICE and inp.value in ("objection_own", "objection_other"):
        return start_filing(state, inp.value)
    return None


# --- one field at a time ------------------------------------------------------------------


def _advance(state: DialogState, draft: Draft, notice: Notice | None = None) -> Transition:
    """To the next unanswered field, or to the review when every field is answered."""
    visible = draft.spec.visible_fields(draft.values)
    following = next((f for f in visible if not draft.answered(f)), None)
    if following is None:
        return Transition(_with(state, REVIEW_STEP, replace(draft, at=None)), notice=notice)
    return Transition(_with(state, FIELD_STEP, replace(draft, at=following.key)), notice=notice)


def _current(state: DialogState) -> tuple[Draft, Field] | None:
    draft = Draft.of(state)
    if draft is None or draft.at is None:
        return None
    current = draft.spec.field(draft.at)
    return None if current is None else (draft, current)


def _options(f: Field, state: DialogState) -> tuple[Option, ...]:
    return tuple(o for o in f.options if state.context.photos or not o.needs_photo)


def field_prompt(state: DialogState, t: Translator) -> Reply:
    found = _current(state)
    if found is None:
        return Reply(text=t.gettext("This form has expired. Please start again from the menu."))
    draft, f = found
    prompt = f.on_behalf if state.context.facilitator is not None and f.on_behalf else f.prompt
    text = t.gettext(prompt)
    brief = t.gettext(f.brief) if f.brief else None
    if f.kind is FieldKind.CHOICE:
        choices = tuple(Choice(o.key, t.gettext(o.label)) for o in _options(f, state))
        return Reply(text=text, brief=brief, choices=choices, expects=Expect.CHOICE)
    if f.kind in (FieldKind.PHOTO, FieldKind.LOCATION):
        return _media_prompt(state, draft, f, text, t)
    return Reply(text=text, brief=brief, expects=Expect.TEXT)


def _media_prompt(state: DialogState, draft: Draft, f: Field, text: str, t: Translator) -> Reply:
    if not state.context.photos:
        # A feature phone cannot send photos: say where the filing can be finished.
        return Reply(
            text=t.gettext(
                "This step needs a photo. Finish it in our Telegram bot, or ask a PKH "
                "facilitator to file it for you."
            )
        )
    choices: list[Choice] = []
    have = draft.photos_of(f.role) if f.kind is FieldKind.PHOTO else 0
    if f.kind is FieldKind.PHOTO and have:
        text = (
            t.gettext("Photo {count} received (at most {most}).").format(count=have, most=f.most)
            + "\n"
            + text
        )
        if have >= f.least:
            choices.append(Choice("done", t.gettext("Done, no more photos")))
    if f.optional:
        choices.append(Choice("skip", t.gettext("Skip")))
    expects = Expect.PHOTO if f.kind is FieldKind.PHOTO else Expect.LOCATION
    return Reply(text=text, choices=tuple(choices), expects=expects)


def handle_field(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    found = _current(state)
    if found is None:
        return Transition(state.at("menu"))
    draft, f = found
    if inp.kind is InputKind.CHOICE and inp.value == "skip" and f.optional:
        return _answered(state, draft.answer(f.key, _SKIPPED))
    if inp.kind is InputKind.CHOICE and inp.value == "done" and f.kind is FieldKind.PHOTO:
        if draft.photos_of(f.role) >= max(f.least, 1):
            return _answered(state, draft.answer(f.key, _DONE))
        return None
    if f.kind is FieldKind.PHOTO:
        return _take_photo(state, draft, inp, t)
    if f.kind is FieldKind.LOCATION:
        return _take_location(state, draft, f, inp, t)
    if f.kind is FieldKind.CHOICE:
        keys = {o.key for o in _options(f, state)}
        if inp.kind is InputKind.CHOICE and inp.value in keys:
            return _answered(state, draft.answer(f.key, inp.value))
        return None
    if inp.kind is not InputKind.TEXT:
        return None
    return _take_text(state, draft, f, inp.value, t)


def _take_text(
    state: DialogState, draft: Draft, f: Field, typed: str, t: Translator
) -> Transition | None:
    text = " ".join(typed.split())
    if f.kind in (FieldKind.NIK, FieldKind.KK):
        try:
            value = parse_nik(text).value
        except InvalidNik as problem:
            return Transition(state, notice=_number_problem(f, problem, t))
        outside = area_problem(state, value, t) if f.kind is FieldKind.NIK else None
        if outside is not None:
            return Transition(state, notice=outside)
        area = _area_notice(state, draft.answer(f.key, value), t)
        if area is not None:
            return Transition(state, notice=area)
        return _answered(state, draft.answer(f.key, value))
    if f.kind is FieldKind.NAME:
        wrong = name_problem(text, t)
        if wrong is not None:
            return Transition(state, notice=wrong)
        return _answered(state, draft.answer(f.key, text))
    if sum(ch.isalpha() for ch in text) < TEXT_MIN_LETTERS:
        return Transition(state, notice=Notice(t.gettext("Please write a few words.")))
    if len(text) > TEXT_MAX_LENGTH:
        return Transition(
            state,
            notice=Notice(
                t.gettext("That is too long: at most {limit} characters, please.").format(
                    limit=TEXT_MAX_LENGTH
                )
            ),
        )
    return _answered(state, draft.answer(f.key, text))


def _number_problem(f: Field, problem: InvalidNik, t: Translator) -> Notice:
    if f.kind is FieldKind.KK and problem.problem is NikProblem.WRONG_LENGTH:
        return Notice(
            t.ngettext(
                "A KK number has 16 digits; you typed {count} digit.",
                "A KK number has 16 digits; you typed {count} digits.",
                problem.digits,
            ).format(count=problem.digits)
        )
    if f.kind is FieldKind.KK:
        return Notice(t.gettext("This is not a valid KK number. Please check the card."))
    return nik_problem_notice(problem, t)


def _area_notice(state: DialogState, draft: Draft, t: Translator) -> Notice | None:
    """Objections about a recipient come only from people of the same area."""
    filer, subject = draft.values.get("filer_nik"), draft.values.get("nik")
    if draft.form != "objection_other" or filer is None or subject is None:
        return None
    if same_area(AreaRule(state.context.area_rule), filer, subject):
        return None
    return outside_area_notice(t)


def outside_area_notice(t: Translator) -> Notice:
    return Notice(
        t.gettext(
            "Objections about a recipient are accepted only from people who live in the "
            "same area, by the region codes in both NIKs. This NIK is from another area."
        ),
        t.gettext("Only people of the same area may object."),
    )


def _take_photo(state: DialogState, draft: Draft, inp: Input, t: Translator) -> Transition | None:
    if inp.kind not in (InputKind.PHOTO, InputKind.FILE) or inp.attachment is None:
        if inp.kind is InputKind.TEXT or inp.kind is InputKind.LOCATION:
            return Transition(
                state,
                notice=Notice(t.gettext("Please send a photo here (JPEG, PNG or WebP).")),
            )
        return None
    return Transition(
        _with(state, RECEIVING_STEP, draft), effect=ReceivePhoto(attachment=inp.attachment)
    )


def _take_location(
    state: DialogState, draft: Draft, f: Field, inp: Input, t: Translator
) -> Transition | None:
    if inp.kind is InputKind.LOCATION and inp.location is not None:
        lat, lon = inp.location.lat, inp.location.lon
        if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90):
            return None
        located = replace(draft, location=(round(lat, 6), round(lon, 6)))
        return _answered(state, located.answer(f.key, _DONE))
    if inp.kind in (InputKind.TEXT, InputKind.PHOTO, InputKind.FILE):
        return Transition(
            state,
            notice=Notice(
                t.gettext("Please share a location (paperclip, then Location), or press Skip.")
            ),
        )
    return None


def _answered(state: DialogState, draft: Draft) -> Transition:
    # After a change from the review, every other answer is still there: back to it.
    return _advance(state, replace(draft, editing=False))


def receiving_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Receiving the photo, one moment…"))


def resume_photo(state: DialogState, outcome: PhotoOutcome, t: Translator) -> Transition:
    draft = Draft.of(state)
    if draft is None or draft.at is None:
        return Transition(state.at("menu"))
    back = _with(state, FIELD_STEP, draft)
    f = draft.spec.field(draft.at)
    if isinstance(outcome, PhotoRefused) or f is None:
        problem = outcome.problem if isinstance(outcome, PhotoRefused) else "unavailable"
        return Transition(back, notice=photo_problem_notice(problem, t))
    if any(sha == outcome.sha256 for sha, _ in draft.photos):
        return Transition(
            back, notice=Notice(t.gettext("You already sent this photo. Please send another one."))
        )
    added = replace(draft, photos=(*draft.photos, (outcome.sha256, f.role)))
    if added.photos_of(f.role) < f.most:
        return Transition(_with(state, FIELD_STEP, added))
    return _answered(state, added.answer(f.key, _DONE))


def photo_problem_notice(problem: str, t: Translator) -> Notice:
    messages = {
        "not_an_image": t.gettext(
            "That file is not a photo. Please send a photo (JPEG, PNG or WebP), not a PDF "
            "or another document."
        ),
        "unsupported_format": t.gettext(
            "That image format is not accepted. Please send a JPEG, PNG or WebP photo."
        ),
        "too_large": t.gettext("That file is too large. Please send a smaller photo."),
        "too_many_pixels": t.gettext(
            "That image is far too large in pixels. Please send an ordinary photo."
        ),
        "unreadable": t.gettext(
            "That photo could not be read; it may be damaged. Please take it again."
        ),
    }
    return Notice(
        messages.get(
            problem,
            t.gettext("We could not receive the photo just now. Please send it again."),
        )
    )


# --- review, change, confirm ---------------------------------------------------------------


def review_prompt(state: DialogState, t: Translator) -> Reply:
    draft = Draft.of(state)
    if draft is None:
        return Reply(text=t.gettext("This form has expired. Please start again from the menu."))
    spec = draft.spec
    lines = [f"{t.gettext(spec.title)}:"]
    lines += [
        f"• {t.gettext(f.label)}: {_shown(draft, f, t)}" for f in spec.visible_fields(draft.values)
    ]
    lines.append("")
    lines.append(
        t.gettext(
            "Filing is free: this service never asks for money, a PIN or an OTP code. "
            "Is everything right?"
        )
    )
    return Reply(
        text="\n".join(lines),
        brief=t.gettext(spec.title) + "\n" + t.gettext("Send it?"),
        choices=(
            Choice("confirm", t.gettext("Send")),
            Choice("change", t.gettext("Change something")),
            Choice("discard", t.gettext("Cancel")),
        ),
        expects=Expect.CHOICE,
    )


def _shown(draft: Draft, f: Field, t: Translator) -> str:
    value = draft.values.get(f.key, "")
    if f.kind in (FieldKind.NIK, FieldKind.KK):
        return mask_nik(value)
    if f.kind is FieldKind.CHOICE:
        option = next((o for o in f.options if o.key == value), None)
        return t.gettext(option.label) if option else value
    if f.kind is FieldKind.PHOTO:
        count = draft.photos_of(f.role)
        if count == 0:
            return t.gettext("skipped")
        return t.ngettext("{count} photo", "{count} photos", count).format(count=count)
    if f.kind is FieldKind.LOCATION:
        return t.gettext("shared") if draft.location else t.gettext("skipped")
    return value if len(value) <= _SUMMARY_TEXT_CHARS else value[: _SUMMARY_TEXT_CHARS - 1] + "…"


def handle_review(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    draft = Draft.of(state)
    if draft is None:
        return Transition(state.at("menu"))
    if inp.kind is not InputKind.CHOICE:
        return None
    if inp.value == "confirm":
        problem = _area_notice(state, draft, t)
        if problem is not None:
            return Transition(state, notice=problem)
        return Transition(
            _with(state, SUBMITTING_STEP, draft),
            effect=SubmitFiling(_to_filing(draft, state.language)),
        )
    if inp.value == "change":
        return Transition(_with(state, CHANGE_STEP, draft))
    if inp.value == "discard":
        return Transition(
            state.at("menu"),
            notice=Notice(t.gettext("Cancelled. Nothing was sent."), t.gettext("Cancelled.")),
        )
    return None


def _to_filing(draft: Draft, language: str) -> FilingDraft:
    spec = draft.spec
    visible = spec.visible_fields(draft.values)
    keys = {f.key for f in visible}
    values = {k: v for k, v in draft.values.items() if k in keys}
    roles = {f.role for f in visible if f.kind is FieldKind.PHOTO}
    photos = tuple(FilingPhoto(sha, role) for sha, role in draft.photos if role in roles)
    location = Location(*draft.location) if draft.location and "location" in keys else None
    return spec.to_draft(values, photos, location, language)


def change_prompt(state: DialogState, t: Translator) -> Reply:
    draft = Draft.of(state)
    fields = draft.spec.visible_fields(draft.values) if draft else ()
    return Reply(
        text=t.gettext("Which one do you want to change?"),
        choices=(
            *(Choice(f.key, t.gettext(f.label)) for f in fields),
            Choice("back", t.gettext("Back")),
        ),
        expects=Expect.CHOICE,
    )


def handle_change(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    draft = Draft.of(state)
    if draft is None:
        return Transition(state.at("menu"))
    if inp.kind is not InputKind.CHOICE:
        return None
    chosen = draft.spec.field(inp.value)
    if chosen is None or not chosen.visible(draft.values):
        return None
    # A typed answer stays until it is replaced; photos and a location start afresh.
    media = chosen.kind in (FieldKind.PHOTO, FieldKind.LOCATION)
    kept = draft.forget(chosen) if media else draft
    return Transition(_with(state, FIELD_STEP, replace(kept, at=chosen.key, editing=True)))


def submitting_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(text=t.gettext("Sending, one moment…"))


def resume_submit(state: DialogState, outcome: FilingOutcome, t: Translator) -> Transition:
    draft = Draft.of(state)
    if isinstance(outcome, FilingAccepted):
        return Transition(state.at("menu"), reply=ticket_reply(outcome.ticket, t))
    if outcome.reason is FilingRefusal.OUTSIDE_AREA and draft is not None:
        return Transition(_with(state, REVIEW_STEP, draft), notice=outside_area_notice(t))
    done = (Choice("tickets", t.gettext("My tickets")), Choice("home", t.gettext("Menu")))
    if outcome.reason is FilingRefusal.ALREADY_OPEN:
        kind = kind_label(draft.spec.kind, t) if draft else ""
        text = t.gettext(
            "You already have an open ticket of this kind ({kind}) about this household: "
            "{ticket}. You can file again once it is decided; follow it with /tiket."
        ).format(kind=kind, ticket=outcome.ticket or "")
        brief = t.gettext("Already open: ticket {ticket}.").format(ticket=outcome.ticket or "")
        return Transition(state.at("menu"), reply=Reply(text=text, brief=brief, choices=done))
    return Transition(
        state.at("menu"),
        reply=Reply(
            text=t.gettext(
                "You have reached today's limit of filings. Please continue tomorrow; "
                "nothing you filed before is lost."
            ),
            brief=t.gettext("Today's limit of filings is reached. Try again tomorrow."),
            choices=done,
        ),
    )


def ticket_reply(ticket: str, t: Translator) -> Reply:
    return Reply(
        text=t.gettext(
            "Received. Your ticket number is {ticket}.\n\n"
            "What happens next: we send it to DTSEN, the national registry. The village "
            "or kelurahan office and a field officer (a PKH facilitator or a social "
            "welfare worker) check it, which usually takes a few weeks. You will get a "
            "message here each time the ticket moves, and /tiket shows it at any time.\n\n"
            "This service is free: nobody from it will ever ask you for money, a PIN or "
            "an OTP code."
        ).format(ticket=ticket),
        brief=t.gettext(
            "Received. Ticket {ticket}. Checked by the village and a field officer, "
            "usually a few weeks. See 'My tickets'. Free: no money/PIN/OTP."
        ).format(ticket=ticket),
        choices=(Choice("tickets", t.gettext("My tickets")), Choice("home", t.gettext("Menu"))),
    )


def filing_back(state: DialogState) -> DialogState:
    """One step back inside a form: the previous field, or out of the form at the start."""
    draft = Draft.of(state)
    if draft is None:
        return state.at("menu")
    if state.step in (CHANGE_STEP,):
        return _with(state, REVIEW_STEP, draft)
    if state.step == REVIEW_STEP:
        last = draft.spec.visible_fields(draft.values)[-1]
        return _with(state, FIELD_STEP, replace(draft.forget(last), at=last.key))
    visible = draft.spec.visible_fields(draft.values)
    if draft.editing and all(draft.answered(f) for f in visible):
        return _with(state, REVIEW_STEP, replace(draft, at=None, editing=False))
    keys = [f.key for f in visible]
    if draft.at not in keys or keys.index(draft.at) == 0:
        return state.at("menu")
    previous = visible[keys.index(draft.at) - 1]
    return _with(state, FIELD_STEP, replace(draft.forget(previous), at=previous.key))
