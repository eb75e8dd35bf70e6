"""The values a dialog step takes and returns. No I/O, no channel details."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar

from bot.facilitators import ActivationOutcome, FacilitatorRole, HouseholdPage
from bot.filings import FilingDraft, FilingOutcome, Location, TicketHistory, TicketList
from bot.lookup import LookupOutcome
from bot.personal_data import Erased, HeldData
from bot.subscriptions import SubscribeOutcome, SubscriptionList, Unsubscribed

# Working data is JSON: it is sealed into the conversation row between steps.
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


class InputKind(StrEnum):
    START = "start"  # a new session: /start without history, or a USSD dial
    TEXT = "text"
    CHOICE = "choice"  # a button pressed: `value` is the choice key
    COMMAND = "command"  # `value` is the command name without the slash
    PHOTO = "photo"  # a photo: `attachment` says where to fetch it
    FILE = "file"  # a file sent as a document: `attachment` has its declared type
    LOCATION = "location"  # a shared location: `location`
    OTHER = "other"  # a sticker, a voice note: nothing a step can use


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file the channel holds for us: `ref` fetches it through the channel's FileSource."""

    ref: str
    size: int | None = None
    mime_type: str | None = None


@dataclass(frozen=True, slots=True)
class Input:
    kind: InputKind
    value: str = ""
    attachment: Attachment | None = None
    location: Location | None = None
    argument: str = ""  # what follows a command (`/pendamping K7M2Q-9XHRT`)

    def __repr__(self) -> str:  # typed text may be a NIK or a name: keep it out of logs
        return f"Input({self.kind.value})"


class Expect(StrEnum):
    """What the conversation waits for after a reply."""

    TEXT = "text"
    CHOICE = "choice"
    PHOTO = "photo"
    LOCATION = "location"
    NOTHING = "nothing"  # the exchange is complete (a USSD session ends here)


class CommandMenu(StrEnum):
    """The list of commands a chat app shows beside the text box."""

    CITIZEN = "citizen"
    FACILITATOR = "facilitator"


@dataclass(frozen=True, slots=True)
class Choice:
    key: str
    label: str


@dataclass(frozen=True, slots=True)
class Reply:
    """What to show. `brief` is the same message for small screens (USSD: 160 characters
    including the choices); without it, `text` is used."""

    text: str
    choices: tuple[Choice, ...] = ()
    expects: Expect = Expect.NOTHING
    brief: str | None = None
    language: str = "id"  # the language it is written in, for what a channel adds around it
    # On a small screen a notice may take the place of the brief (a long menu's title).
    brief_gives_way: bool = False
    # Set when the chat's command menu must change: it became (or stopped being) a
    # facilitator's, or a facilitator chose another language. A replay leaves it out.
    menu: CommandMenu | None = None

    def after(self, notice: Notice) -> Reply:
        """The same reply with a notice before it."""
        brief_base = self.brief if self.brief is not None else self.text
        short_notice = notice.brief or notice.text
        return replace(
            self,
            text=f"{notice.text}\n\n{self.text}",
            brief=short_notice if self.brief_gives_way else f"{short_notice}\n{brief_base}",
        )


# Bump when the privacy notice changes: everyone is asked again.
CONSENT_VERSION = "2026-12"

_EMPTY: Mapping[str, JsonValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DialogContext:
    """What the channel and the operator's settings allow; given by the engine, not saved."""

    photos: bool = True  # the channel can receive photos and locations
    area_rule: str = "kecamatan"  # bot.filings.AreaRule for objections about a recipient
    # How long things are kept, for the privacy notice to say exactly.
    idle_minutes: int = 30
    photo_retention_days: int = 30
    # The PKH facilitator this chat speaks for: their menu, areas and limits apply.
    facilitator: FacilitatorRole | None = None


@dataclass(frozen=True, slots=True)
class DialogState:
    step: str
    language: str
    consent_version: str | None = None
    data: Mapping[str, JsonValue] = field(default_factory=lambda: _EMPTY)
    offered: tuple[str, ...] = ()  # choice keys of the last reply, for numbered answers
    context: DialogContext = field(default_factory=DialogContext, compare=False)

    @property
    def consented(self) -> bool:
        return self.consent_version == CONSENT_VERSION

    def at(self, step: str, **data: JsonValue) -> DialogState:
        """This state moved to `step`, with only the given working data."""
        return replace(self, step=step, data=MappingProxyType(dict(data)))

    def text(self, key: str) -> str | None:
        """A string of the working data, or None."""
        value = self.data.get(key)
        return value if isinstance(value, str) else None

    def detour(self, step: str, return_to: str) -> DialogState:
        """Move to a side step (language, help) that comes back to `return_to` afterwards."""
        return self.at(step, return_to=return_to, **self._working_data())

    def at_page(self, page: int) -> DialogState:
        """The same step and data, showing page `page` of a paged screen."""
        return replace(self, data=MappingProxyType({**self.data, "page": page}))

    def back_from_detour(self) -> DialogState:
        """Return from a side step to where the person was, with their working data."""
        return self.at(self.text("return_to") or "menu", **self._working_data())

    def _working_data(self) -> dict[str, JsonValue]:
        return {key: value for key, value in self.data.items() if key not in ("return_to", "page")}

    def __repr__(self) -> str:
        return f"DialogState(step={self.step!r}, language={self.language!r})"


# --- effects: what a step asks the engine to do; the outcome comes back to `resume` ---


@dataclass(frozen=True, slots=True)
class StatusLookup:
    """Ask the registry about a NIK + name."""

    in_transaction: ClassVar[bool] = False
    nik: str
    name: str

    def __repr__(self) -> str:
        return "StatusLookup(****)"


@dataclass(frozen=True, slots=True)
class ReceivePhoto:
    """Fetch a photo through the channel, check it, re-encode it and keep it."""

    in_transaction: ClassVar[bool] = False
    attachment: Attachment


@dataclass(frozen=True, slots=True)
class SubmitFiling:
    """Store a confirmed filing with its outbox row, in the step's own transaction."""

    in_transaction: ClassVar[bool] = True
    draft: FilingDraft


@dataclass(frozen=True, slots=True)
class ListTickets:
    """The person's tickets, newest first."""

    in_transaction: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ShowTicket:
    """One of the person's tickets with its history."""

    in_transaction: ClassVar[bool] = True
    ticket: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Subscribe this chat or phone to the quarterly notices of a household."""

    in_transaction: ClassVar[bool] = True
    nik: str

    def __repr__(self) -> str:
        return "Subscribe(****)"


@dataclass(frozen=True, slots=True)
class ListSubscriptions:
    in_transaction: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    in_transaction: ClassVar[bool] = True
    subscription_id: int


@dataclass(frozen=True, slots=True)
class ShowMyData:
    """What the service holds about this chat or phone."""

    in_transaction: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class EraseMyData:
    """Erase everything held about this chat or phone; the engine then drops the
    conversation itself (the step moves to FORGOTTEN_STEP)."""

    in_transaction: ClassVar[bool] = True
    draft_photos: tuple[str, ...] = ()  # photos of a filing begun but not sent


@dataclass(frozen=True, slots=True)
class ActivateFacilitator:
    """Link this chat to the facilitator whose one-time code this is."""

    in_transaction: ClassVar[bool] = True
    code: str

    def __repr__(self) -> str:
        return "ActivateFacilitator(****)"


@dataclass(frozen=True, slots=True)
class ListHouseholds:
    """One page of the facilitator's households, with their tickets."""

    in_transaction: ClassVar[bool] = True
    page: int = 0


# The step after an erasure: the engine deletes the conversation row instead of saving it.
FORGOTTEN_STEP = "forgotten"

Effect = (
    StatusLookup
    | ReceivePhoto
    | SubmitFiling
    | ListTickets
    | ShowTicket
    | Subscribe
    | ListSubscriptions
    | Unsubscribe
    | ShowMyData
    | EraseMyData
    | ActivateFacilitator
    | ListHouseholds
)


@dataclass(frozen=True, slots=True)
class PhotoAccepted:
    sha256: str


@dataclass(frozen=True, slots=True)
class PhotoRefused:
    problem: str  # bot.photos.PhotoProblem, or "unavailable" when it could not be fetched


@dataclass(frozen=True, slots=True)
class TicketMissing:
    ticket: str


PhotoOutcome = PhotoAccepted | PhotoRefused
Outcome = (
    LookupOutcome
    | PhotoOutcome
    | FilingOutcome
    | TicketList
    | TicketHistory
    | TicketMissing
    | SubscribeOutcome
    | SubscriptionList
    | Unsubscribed
    | HeldData
    | Erased
    | ActivationOutcome
    | HouseholdPage
)


@dataclass(frozen=True, slots=True)
class Notice:
    """A line shown before the next prompt (an error, a confirmation)."""

    text: str
    brief: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """Where a step leads. Without a reply, the new step's own prompt is shown, after
    the notice if there is one. With an effect, the reply comes from `resume`."""

    state: DialogState
    reply: Reply | None = None
    effect: Effect | None = None
    notice: Notice | None = None
