"""The values a dialog step takes and returns. No I/O, no channel details."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from registry_client.models import StatusReport


class InputKind(StrEnum):
    START = "start"  # a new session: /start without history, or a USSD dial
    TEXT = "text"
    CHOICE = "choice"  # a button pressed: `value` is the choice key
    COMMAND = "command"  # `value` is the command name without the slash
    PHOTO = "photo"
    OTHER = "other"  # a sticker, a voice note, a file: nothing a step can use yet


@dataclass(frozen=True, slots=True)
class Input:
    kind: InputKind
    value: str = ""

    def __repr__(self) -> str:  # typed text may be a NIK or a name: keep it out of logs
        return f"Input({self.kind.value})"


class Expect(StrEnum):
    """What the conversation waits for after a reply."""

    TEXT = "text"
    CHOICE = "choice"
    PHOTO = "photo"
    NOTHING = "nothing"  # the exchange is complete (a USSD session ends here)


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

    def after(self, notice: Notice) -> Reply:
        """The same reply with a notice before it."""
        brief_base = self.brief if self.brief is not None else self.text
        return replace(
            self,
            text=f"{notice.text}\n\n{self.text}",
            brief=f"{notice.brief or notice.text}\n{brief_base}",
        )


# Bump when the privacy notice changes: everyone is asked again.
CONSENT_VERSION = "2026-11"

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DialogState:
    step: str
    language: str
    consent_version: str | None = None
    data: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    offered: tuple[str, ...] = ()  # choice keys of the last reply, for numbered answers

    @property
    def consented(self) -> bool:
        return self.consent_version == CONSENT_VERSION

    def at(self, step: str, **data: str) -> DialogState:
        """This state moved to `step`, with only the given working data."""
        return replace(self, step=step, data=MappingProxyType(dict(data)))

    def detour(self, step: str, return_to: str) -> DialogState:
        """Move to a side step (language, help) that comes back to `return_to` afterwards."""
        return self.at(step, return_to=return_to, **self._working_data())

    def back_from_detour(self) -> DialogState:
        """Return from a side step to where the person was, with their working data."""
        return self.at(self.data.get("return_to", "menu"), **self._working_data())

    def _working_data(self) -> dict[str, str]:
        return {key: value for key, value in self.data.items() if key != "return_to"}

    def __repr__(self) -> str:
        return f"DialogState(step={self.step!r}, language={self.language!r})"


@dataclass(frozen=True, slots=True)
class StatusLookup:
    """Ask the registry about a NIK + name; the answer comes back through `resume`."""

    nik: str
    name: str

    def __repr__(self) -> str:
        return "StatusLookup(****)"


class LookupFailure(StrEnum):
    NOT_FOUND = "not_found"  # unknown NIK and wrong name alike: the registry is no oracle
    UNAVAILABLE = "unavailable"
    THROTTLED = "throttled"


LookupOutcome = StatusReport | LookupFailure


@dataclass(frozen=True, slots=True)
class Notice:
    """A line shown before the next prompt (an error, a confirmation)."""

    text: str
    brief: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """Where a step leads. Without a reply, the new step's own prompt is shown, after
    the notice if there is one."""

    state: DialogState
    reply: Reply | None = None
    effect: StatusLookup | None = None
    notice: Notice | None = None
