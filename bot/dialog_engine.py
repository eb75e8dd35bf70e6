"""Runs dialogs for every channel: the I/O around the pure steps of bot/dialogs.

Per input: lock the conversation row, take a step, save, in one transaction. An effect
the step asks for runs inside that transaction when it only touches the database (a
filing and its outbox row are written with the step that confirms them), or between two
transactions when it waits on something slow (the registry, a photo download), so no row
stays locked meanwhile. The state lives in the database, one row per channel + address:
any process can serve any update and a restart loses nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy.ext.asyncio import AsyncSession

from bot.crypto import KeyRing, SealBroken
from bot.dialogs import router
from bot.dialogs.model import (
    FORGOTTEN_STEP,
    DialogContext,
    DialogState,
    Expect,
    Input,
    InputKind,
    Reply,
    Transition,
)
from bot.dialogs.reply_json import reply_from_json, reply_to_json
from bot.effects import EffectRunner
from bot.filings import Filer
from bot.i18n import DEFAULT_LANGUAGE
from bot.notifications import Notification, UnknownNotification, notification_from_json
from bot.photo_intake import FileSource
from bot.request_context import trace_id
from bot.storage.database import Database
from bot.storage.models import Conversation
from bot.storage.outbound_repository import OutboundRepository
from bot.storage.repositories import ConversationRepository

log = logging.getLogger(__name__)

# A slow effect takes seconds; if the process died meanwhile, do not leave the person
# waiting: the waiting step expires soon and they start again.
WAITING_STEP_TTL = timedelta(minutes=2)
# One held message per session start: two would not fit a 160-character screen. The
# next dial shows the next one, oldest first.
HELD_MESSAGES_SHOWN = 1


@dataclass(frozen=True, slots=True)
class Turn:
    """Every input of one channel session so far, for a gateway that sends them all with
    each request (USSD): the engine applies only those it has not seen yet."""

    session: str  # the channel's session id
    inputs: tuple[Input, ...]  # START first

    def __repr__(self) -> str:
        return f"Turn({len(self.inputs)} inputs)"


class DialogEngine:
    def __init__(
        self,
        database: Database,
        keys: KeyRing,
        effects: EffectRunner,
        *,
        idle_timeout: timedelta,
        clock: Callable[[], datetime],
        area_rule: str = "kecamatan",
        photo_retention_days: int = 30,
    ) -> None:
        self._database = database
        self._keys = keys
        self._effects = effects
        self._idle_timeout = idle_timeout
        self._clock = clock
        self._area_rule = area_rule
        self._photo_retention_days = photo_retention_days

    async def handle(
        self,
        channel: str,
        address: str,
        inp: Input,
        *,
        files: FileSource | None = None,
        lookup_budget_s: float | None = None,
    ) -> Reply:
        """Feed one input from `address` on `channel`; return what to show them.

        `files` fetches what the person sent; a channel without one cannot take photos.
        """
        return await self._run(channel, address, [inp], None, files, lookup_budget_s)

    async def handle_turn(
        self, channel: str, address: str, turn: Turn, *, lookup_budget_s: float | None = None
    ) -> Reply:
        """Apply the inputs of `turn` not applied yet, in order; none new (a gateway's
        retry) gives the last reply again and changes nothing."""
        return await self._run(channel, address, turn.inputs, turn.session, None, lookup_budget_s)

    async def _run(
        self,
        channel: str,
        address: str,
        inputs: Sequence[Input],
        session_id: str | None,
        files: FileSource | None,
        lookup_budget_s: float | None,
    ) -> Reply:
        address_hash = self._keys.address_hash(channel, address)
        context = DialogContext(
            photos=files is not None,
            area_rule=self._area_rule,
            idle_minutes=int(self._idle_timeout.total_seconds() // 60),
            photo_retention_days=self._photo_retention_days,
        )
        filer = Filer(channel=channel, address=address, address_hash=address_hash)
        turn_key = None if session_id is None else self._keys.keyed_hash("turn", session_id)
        async with self._database.transaction() as session:
            row = await self._lock(session, channel, address_hash)
            state = self._decode(row, context)
            done = row.turn_count if turn_key is not None and row.turn_session == turn_key else 0
            pending = inputs[done:] if turn_key is not None else inputs
            if not pending:
                return self._replay(row, state)
            transition = await self._apply(session, state, pending, channel, address_hash, filer)
            if transition.state.step == FORGOTTEN_STEP:
                # The person erased their data: not even the conversation row stays.
                await session.delete(row)
                assert transition.reply is not None
                return transition.reply
            self._encode(row, transition.state, waiting=transition.effect is not None)
            if turn_key is not None:
                row.turn_session, row.turn_count = turn_key, len(inputs)
                self._remember(row, transition.reply)
        log.debug(
            "%s %s: %d input(s), %s -> %s",
            channel,
            trace_id(address_hash),
            len(pending),
            state.step,
            transition.state.step,
        )
        if transition.effect is None:
            assert transition.reply is not None
            return transition.reply
        return await self._resume_after(
            transition, channel, address_hash, context, files, lookup_budget_s, turn_key
        )

    async def _apply(
        self,
        session: AsyncSession,
        state: DialogState,
        pending: Sequence[Input],
        channel: str,
        address_hash: str,
        filer: Filer,
    ) -> Transition:
        """Step through `pending` in order. Stops early at a slow effect (its outcome
        decides what comes next) and at an answer that left the step where it was (a
        refusal: what follows was meant for a screen the person never saw)."""
        transition = Transition(state)
        for position, inp in enumerate(pending):
            more = position < len(pending) - 1
            if (
                more
                and inp.kind is InputKind.TEXT
                and router.prompt_for(state).expects is Expect.TEXT
            ):
                return router.ambiguous_answer(state)
            mail = await self._held_mail(session, channel, address_hash, inp)
            transition = router.step(state, inp, mail)
            effect = transition.effect
            if effect is not None and effect.in_transaction:
                outcome = await self._effects.run_in(session, effect, filer)
                transition = router.resume(transition.state, outcome)
            if transition.effect is not None:
                return transition
            if more and (transition.state.step, transition.state.data) == (state.step, state.data):
                return transition
            state = transition.state
        return transition

    def _replay(self, row: Conversation, state: DialogState) -> Reply:
        """The screen last shown for this turn; while an effect runs, its waiting prompt."""
        if row.sealed_last_reply is not None and state.step == row.step:
            try:
                plain = self._keys.unseal(row.sealed_last_reply, context=self._reply_context(row))
                return reply_from_json(plain.decode())
            except (SealBroken, ValueError, KeyError):
                log.warning("the last reply on %s could not be read; showing the step", row.channel)
        return router.prompt_for(state)

    def _remember(self, row: Conversation, reply: Reply | None) -> None:
        """Keep the reply a repeat must show again (None while an effect is under way)."""
        row.sealed_last_reply = (
            None
            if reply is None
            else self._keys.seal(reply_to_json(reply).encode(), context=self._reply_context(row))
        )

    async def _resume_after(
        self,
        transition: Transition,
        channel: str,
        address_hash: str,
        context: DialogContext,
        files: FileSource | None,
        lookup_budget_s: float | None,
        turn_key: str | None,
    ) -> Reply:
        assert transition.effect is not None
        outcome = await self._effects.run_slow(
            transition.effect,
            channel=channel,
            address_hash=address_hash,
            files=files,
            lookup_budget_s=lookup_budget_s,
        )
        async with self._database.transaction() as session:
            row = await self._lock(session, channel, address_hash)
            state = self._decode(row, context)
            if state.step != transition.state.step:
                # The wait expired (or another input moved on): the outcome is stale.
                return router.prompt_for(state)
            resumed = router.resume(state, outcome)
            self._encode(row, resumed.state, waiting=False)
            if turn_key is not None and row.turn_session == turn_key:
                self._remember(row, resumed.reply)
        assert resumed.reply is not None
        return resumed.reply

    async def _held_mail(
        self, session: AsyncSession, channel: str, address_hash: str, inp: Input
    ) -> list[Notification]:
        """Messages kept for a channel that cannot push, shown once when a session starts."""
        if inp.kind is not InputKind.START:
            return []
        rows = await OutboundRepository(session).take_held(
            channel, address_hash, self._clock(), HELD_MESSAGES_SHOWN
        )
        mail = []
        for row in rows:
            try:
                mail.append(notification_from_json(row.payload))
            except (UnknownNotification, ValueError, KeyError):
                log.warning("a held message could not be read; skipped")
        return mail

    async def _lock(self, session: AsyncSession, channel: str, address_hash: str) -> Conversation:
        def blank() -> Conversation:
            now = self._clock()
            fresh = router.new_state(DEFAULT_LANGUAGE)
            return Conversation(
                channel=channel,
                address_hash=address_hash,
                language=fresh.language,
                consent_version=None,
                consented_at=None,
                step=fresh.step,
                sealed_data=None,
                updated_at=now,
                step_expires_at=now + self._idle_timeout,
                turn_session=None,
                turn_count=0,
                sealed_last_reply=None,
            )

        return await ConversationRepository(session).lock(channel, address_hash, blank=blank)

    def _decode(self, row: Conversation, context: DialogContext) -> DialogState:
        state = DialogState(
            step=row.step,
            language=row.language,
            consent_version=row.consent_version,
            context=context,
        )
        if self._clock() >= row.step_expires_at:
            # Idle too long: the working data (a typed NIK) is gone, the person starts over.
            return state.at("menu" if state.consented else "consent")
        if row.sealed_data is None:
            return state
        try:
            plain = self._keys.unseal(row.sealed_data, context=self._seal_context(row))
        except SealBroken:
            log.warning("conversation data on %s could not be unsealed; starting over", row.channel)
            return state.at("menu" if state.consented else "consent")
        stored = json.loads(plain)
        return replace(
            state,
            data=MappingProxyType(dict(stored["data"])),
            offered=tuple(stored["offered"]),
        )

    def _encode(self, row: Conversation, state: DialogState, *, waiting: bool) -> None:
        now = self._clock()
        if state.consent_version != row.consent_version:
            row.consented_at = now if state.consent_version else None
        row.language = state.language
        row.consent_version = state.consent_version
        row.step = state.step
        row.updated_at = now
        row.step_expires_at = now + (WAITING_STEP_TTL if waiting else self._idle_timeout)
        payload = json.dumps({"data": dict(state.data), "offered": list(state.offered)})
        row.sealed_data = self._keys.seal(payload.encode(), context=self._seal_context(row))

    @staticmethod
    def _seal_context(row: Conversation) -> str:
        return conversation_seal_context(row.channel, row.address_hash)

    @staticmethod
    def _reply_context(row: Conversation) -> str:
        return last_reply_seal_context(row.channel, row.address_hash)


def conversation_seal_context(channel: str, address_hash: str) -> str:
    return f"conversation:{channel}:{address_hash}"


def last_reply_seal_context(channel: str, address_hash: str) -> str:
    return f"last-reply:{channel}:{address_hash}"
