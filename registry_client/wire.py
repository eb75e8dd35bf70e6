"""The registry's JSON answers as strict pydantic models, converted to the typed values of
registry_client.models.

A validation failure becomes RegistryBadResponse naming the operation, the field path and
the kind of error, never the offending value: an answer may hold a NIK or a name.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Final, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
    with_config,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from registry_client.errors import RegistryBadResponse
from registry_client.models import (
    ChangesPage,
    Household,
    HouseholdState,
    ProgrammeState,
    ProgrammeStatus,
    QuarterInfo,
    Stage,
    StatusChange,
    StatusReport,
    SubmissionReceipt,
    TicketUpdate,
    UpdatesPage,
)

# Anchored: pydantic searches for a pattern rather than matching it whole.
Quarter = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}Q[1-4]$")]
KecamatanCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
Nik = Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]
# Codes are checked for shape, not membership: a programme or reason the registry adds
# later must not break every look-up; the bot words unknown ones generically.
ProgrammeCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9-]{0,15}$")]
ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Ticket = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


def _timestamp(value: object) -> datetime:
    """An ISO-8601 time that says its UTC offset, with a standard-library tzinfo.

    Answers are decoded by json.loads, and strict pydantic takes only datetime objects from
    Python data, so the text is parsed here; a time without an offset is ambiguous.
    """
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "an ISO-8601 time is a string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("datetime_parsing", "not an ISO-8601 time") from None
    offset = parsed.utcoffset()
    if offset is None:
        raise PydanticCustomError("timezone_aware", "an ISO-8601 time needs a UTC offset")
    return parsed.replace(tzinfo=timezone(offset))


Timestamp = Annotated[datetime, PlainValidator(_timestamp)]


class _Wire(BaseModel):
    # strict: `true` is no decile and "3" no member count. Unknown keys are ignored so the
    # registry may add fields. hide_input_in_errors keeps values out of str(error) too.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", hide_input_in_errors=True)


# --- status look-up (docs/registry-api.md section 1) -------------------------------------------


class FoundWire(_Wire):
    found: bool


class HouseholdWire(_Wire):
    decile: Annotated[int, Field(ge=1, le=10)]
    kecamatan_code: KecamatanCode
    members: Annotated[int, Field(ge=1, le=99)]

    def value(self) -> Household:
        return Household(self.decile, self.kecamatan_code, self.members)


class ProgrammeWire(_Wire):
    code: ProgrammeCode
    status: ProgrammeState
    since: Quarter | None = None
    until: Quarter | None = None
    amount_idr: Annotated[int, Field(ge=0, le=10**12)] | None = None
    period: Quarter | None = None
    reason_code: ReasonCode | None = None

    @model_validator(mode="after")
    def _state_says_enough(self) -> Self:
        # What each state must say: since when it runs, or until when and why it stopped.
        if self.status == "active" and self.since is None:
            raise PydanticCustomError("since_required", "an active programme says since when")
        if self.status == "ended" and self.until is None:
            raise PydanticCustomError("until_required", "an ended programme says until when")
        if self.status != "active" and self.reason_code is None:
            raise PydanticCustomError("reason_code_required", "a stopped programme says why")
        return self

    def value(self) -> ProgrammeStatus:
        return ProgrammeStatus(
            code=self.code,
            status=self.status,
            since=self.since,
            until=self.until,
            amount_idr=self.amount_idr,
            period=self.period,
            reason_code=self.reason_code,
        )


class StatusWire(_Wire):
    quarter: Quarter
    name_masked: NonEmpty
    household: HouseholdWire
    programmes: list[ProgrammeWire]
    updated_at: Timestamp

    def value(self) -> StatusReport:
        return StatusReport(
            quarter=self.quarter,
            name_masked=self.name_masked,
            household=self.household.value(),
            programmes=tuple(programme.value() for programme in self.programmes),
            updated_at=self.updated_at,
        )


# --- sandbox people (docs/registry-api.md section 5) --------------------------------------------


class PersonWire(_Wire):
    nik: Nik
    name: NonEmpty


class PeopleWire(_Wire):
    items: list[PersonWire]


# --- participation queue (docs/registry-api.md sections 2 and 3) -------------------------------


class ReceiptWire(_Wire):
    ticket: Ticket
    status: Stage


class TicketWire(_Wire):
    ticket: Ticket
    submission_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    stage: Stage
    reason_code: ReasonCode | None
    updated_at: Timestamp

    def value(self) -> TicketUpdate:
        return TicketUpdate(
            ticket=self.ticket,
            submission_id=self.submission_id,
            stage=self.stage,
            reason_code=self.reason_code,
            updated_at=self.updated_at,
        )


class UpdatesWire(_Wire):
    items: list[TicketWire]
    next_cursor: Annotated[str, StringConstraints(max_length=512)] | None


# --- quarterly change feed (docs/registry-api.md section 4) -------------------------------------

# A page holds at most 1000 items (the contract's largest limit); a household state lists
# each programme at most once, and there are a handful.
_MAX_PAGE: Final = 1000
_MAX_PROGRAMMES: Final = 32


class QuarterWire(_Wire):
    quarter: Quarter
    published_at: Timestamp

    def value(self) -> QuarterInfo:
        return QuarterInfo(quarter=self.quarter, published_at=self.published_at)


class QuartersWire(_Wire):
    items: list[QuarterWire]


# A page of changes is the one answer that comes by the thousand (a million a quarter), so
# its items are validated as typed dicts, straight from the JSON bytes: pydantic-core
# parses and checks them in one pass and builds no model object per item: about twice as
# fast as json.loads and a model per item. Same strict rules as _Wire.
_SHAPE: Final = ConfigDict(strict=True, extra="ignore", hide_input_in_errors=True)


@with_config(_SHAPE)
class HouseholdStateShape(TypedDict):
    decile: Annotated[int, Field(ge=1, le=10)]
    programmes: Annotated[tuple[ProgrammeCode, ...], Field(max_length=_MAX_PROGRAMMES)]


@with_config(_SHAPE)
class StatusChangeShape(TypedDict):
    nik: Nik
    previous: HouseholdStateShape
    current: HouseholdStateShape
    reason_code: ReasonCode | None  # the key is required; its value may be null


@with_config(_SHAPE)
class ChangesShape(TypedDict):
    items: Annotated[list[StatusChangeShape], Field(max_length=_MAX_PAGE)]
    next_cursor: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None


_CHANGES: Final = TypeAdapter(ChangesShape)


# --- errors (docs/registry-api.md conventions) ---------------------------------------------------


class ErrorBodyWire(_Wire):
    # Error codes end up in exception messages and logs; anything else than a plain code
    # (which could echo what was sent) makes the answer a broken one.
    code: ReasonCode


class ErrorWire(_Wire):
    error: ErrorBodyWire


# --- validation -----------------------------------------------------------------------------

_Model = TypeVar("_Model", bound=_Wire)

# A location names a field or a list index. Only field names of the models above are shown:
# none has a dict field, but should one appear its keys would come from the answer.
_FIELD_NAMES: Final = frozenset(
    name for model in _Wire.__subclasses__() for name in model.model_fields
) | frozenset(
    name
    for shape in (HouseholdStateShape, StatusChangeShape, ChangesShape)
    for name in shape.__annotations__
)
_SHOWN_ERRORS: Final = 3


def validated(model: type[_Model], document: object, operation: str) -> _Model:
    """`document` (decoded JSON) as `model`, or RegistryBadResponse naming what was wrong."""
    try:
        return model.model_validate(document)
    except ValidationError as error:
        problems = _problems(error)
    # Raised out here, not from the except block: the ValidationError holds the answer, so
    # it must be neither __cause__ nor __context__ of what may end up in a log.
    raise RegistryBadResponse(f"{operation}: answer off the contract at {problems}")


def _problems(failure: ValidationError) -> str:
    """Where and what kind each error is; the input and the message (which may quote the
    input) are left out."""
    errors = failure.errors(include_url=False, include_input=False, include_context=False)
    problems = [f"{_path(error['loc'])} ({error['type']})" for error in errors]
    shown = "; ".join(problems[:_SHOWN_ERRORS])
    if len(problems) > _SHOWN_ERRORS:
        shown += f"; {len(problems) - _SHOWN_ERRORS} more"
    return shown


def _path(loc: tuple[int | str, ...]) -> str:
    path = "answer"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if part in _FIELD_NAMES else ".?"
    return path


# --- answers as typed values ----------------------------------------------------------------


def status_report(document: object, operation: str) -> StatusReport | None:
    """A status look-up answer; None for `{"found": false}`."""
    if not validated(FoundWire, document, operation).found:
        return None
    return validated(StatusWire, document, operation).value()


def error_code(document: object) -> str | None:
    """The code of an error document, or None when it has no valid one."""
    try:
        return ErrorWire.model_validate(document).error.code
    except ValidationError:
        return None


def people(document: object, operation: str) -> list[tuple[str, str]]:
    return [(p.nik, p.name) for p in validated(PeopleWire, document, operation).items]


def receipt(document: object, operation: str, *, replayed: bool) -> SubmissionReceipt:
    answer = validated(ReceiptWire, document, operation)
    return SubmissionReceipt(ticket=answer.ticket, status=answer.status, replayed=replayed)


def ticket_update(document: object, operation: str) -> TicketUpdate:
    return validated(TicketWire, document, operation).value()


def updates_page(document: object, operation: str) -> UpdatesPage:
    answer = validated(UpdatesWire, document, operation)
    return UpdatesPage(
        items=tuple(item.value() for item in answer.items), next_cursor=answer.next_cursor
    )


def quarters(document: object, operation: str) -> tuple[QuarterInfo, ...]:
    return tuple(item.value() for item in validated(QuartersWire, document, operation).items)


def changes_page(raw: bytes, operation: str) -> ChangesPage:
    """A page of a quarter's changes, from the answer's JSON bytes."""
    try:
        answer = _CHANGES.validate_json(raw)
    except ValidationError as error:
        malformed = any(e["type"] == "json_invalid" for e in error.errors(include_input=False))
        problems = "" if malformed else _problems(error)
    else:
        return _changes(answer)
    # Raised out here, as in validated(): the error holds the answer.
    if malformed:
        raise RegistryBadResponse(f"{operation}: answer is malformed JSON")
    raise RegistryBadResponse(f"{operation}: answer off the contract at {problems}")


def _changes(answer: ChangesShape) -> ChangesPage:
    # Most people of a page share one of a few dozen changes: one state object for each.
    states: dict[tuple[int, tuple[str, ...]], HouseholdState] = {}
    items = []
    for item in answer["items"]:
        previous, current = item["previous"], item["current"]
        key = (previous["decile"], previous["programmes"])
        before = states.get(key) or states.setdefault(key, HouseholdState(*key))
        key = (current["decile"], current["programmes"])
        after = states.get(key) or states.setdefault(key, HouseholdState(*key))
        items.append(StatusChange(item["nik"], before, after, item["reason_code"]))
    return ChangesPage(items=tuple(items), next_cursor=answer["next_cursor"])
