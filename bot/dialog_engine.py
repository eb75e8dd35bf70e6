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

from sqlalchemy.exc import DBAPIError

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
from bot.effects import EffectRunner, Prepared
from bot.facilitators import FACILITATOR_CHANNEL, FacilitatorRole
from bot.filings import Filer
from bot.i18n import DEFAULT_LANGUAGE, normalize_language
from bot.message_repeats import already_applied, with_applied
from bot.notifications import Notification, UnknownNotification, notification_from_json
from bot.photo_intake import FileSource
from bot.request_context import trace_id
from bot.storage import conversation_store
from bot.storage.conversation_store import ConversationRow
from bot.storage.database import Database, NeedsSession, Unit
from bot.storage.driver_sql import ConnectionDropped
from bot.storage.facilitator_repository import FacilitatorRepository
from bot.storage.outbound_repository import OutboundRepository

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
        language_hint: str | None = None,
        message_id: int | None = None,
    ) -> Reply:
        """Feed one input from `address` on `channel`; return what to show them.

        `files` fetches what the person sent; a channel without one cannot take photos.
        `language_hint` (the app's language, as Telegram reports it) is the language of
        someone never seen before, when it is one we serve; later, their own choice holds.
        `message_id` is the channel's number for the message within the chat: one
        delivered again changes nothing and gets the current step's question again.
        """
        first = normalize_language(language_hint)
        return await self._run(
            channel, address, [inp], None, files, lookup_budget_s, first, message_id
        )

    async def handle_turn(
        self, channel: str, address: str, turn: Turn, *, lookup_budget_s: float | None = None
    ) -> Reply:
        """Apply the inputs of `turn` not applied yet, in order; none new (a gateway's
        retry) gives the last reply again and changes nothing."""
        return await self._run(
            channel,
            address,
            turn.inputs,
            turn.session,
            None,
            lookup_budget_s,
            DEFAULT_LANGUAGE,
            None,
        )

    async def _run(
        self,
        channel: str,
        address: str,
        inputs: Sequence[Input],
        session_id: str | None,
        files: FileSource | None,
        lookup_budget_s: float | None,
        first_language: str,
        message_id: int | None,
    ) -> Reply:
        lean, attempt = True, 1
        while True:
            try:
                return await self._run_once(
                    channel,
                    address,
                    inputs,
                    session_id,
                    files,
                    lookup_budget_s,
                    first_language,
                    message_id,
                    lean=lean,
                )
            except NeedsSession:
                # The step needs the ORM (a filing, held mail): nothing was committed, so
                # it runs again, whole, in a full unit.
                lean = False
            except (DBAPIError, ConnectionDropped) as error:
                dropped = isinstance(error, ConnectionDropped) or error.connection_invalidated
                if not dropped or attempt == 2:
                    raise
                attempt += 1
                # A connection the server dropped (no pre-ping finds it first): the unit
                # of work rolled back, so running it again on a fresh connection is safe.
                log.warning("database connection was dropped; trying once more")

    async def _run_once(
        self,
        channel: str,
        address: str,
        inputs: Sequence[Input],
        session_id: str | None,
        files: FileSource | None,
        lookup_budget_s: float | None,
        first_language: str,
        message_id: int | None,
        *,
        lean: bool,
    ) -> Reply:
        address_hash = self._keys.address_hash(channel, address)
        turn_key = None if session_id is None else self._keys.keyed_hash("turn", session_id)
        # Held mail is looked for when a session starts: a USSD turn's first request (later
        # ones carry the session's START too, already applied).
        starts = inputs[-1].kind is InputKind.START
        async with self._database.unit(lean=lean) as unit:
            loaded = await conversation_store.load_or_create(
                unit,
                self._blank(channel, address_hash, first_language),
                held_mail=starts,
                facilitator=channel == FACILITATOR_CHANNEL,
            )
            row, has_mail = loaded.row, loaded.held_mail
            role = await self._role(unit, loaded.facilitator_id)
            context = DialogContext(
                photos=files is not None,
                area_rule=self._area_rule,
                idle_minutes=int(self._idle_timeout.total_seconds() // 60),
                photo_retention_days=self._photo_retention_days,
                facilitator=role,
            )
            filer = Filer(
                channel=channel,
                address=address,
                address_hash=address_hash,
                facilitator_id=None if role is None else role.id,
            )
            state = self._decode(row, context)
            done = row.turn_count if turn_key is not None and row.turn_session == turn_key else 0
            pending = inputs[done:] if turn_key is not None else inputs
            if message_id is not None and already_applied(row.recent_messages, message_id):
                pending = []  # a repeated delivery, applied before
            if not pending:
                return self._replay(row, state)
            transition, prepared = await self._apply(unit, state, pending, filer, has_mail=has_mail)
            if transition.state.step == FORGOTTEN_STEP:
                # The person erased their data: not even the conversation row stays.
                await conversation_store.forget(unit, channel, address_hash)
                assert transition.reply is not None
                return transition.reply
            self._encode(row, transition.state, waiting=transition.effect is not None)
            if turn_key is not None:
                row.turn_session, row.turn_count = turn_key, len(inputs)
                self._remember(row, transition.reply)
            if message_id is not None:
                row.recent_messages = with_applied(row.recent_messages, message_id)
            await conversation_store.save(unit, row)
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
            transition, row, prepared, files, lookup_budget_s, remember=turn_key is not None
        )

    async def _apply(
        self,
        unit: Unit,
        state: DialogState,
        pending: Sequence[Input],
        filer: Filer,
        *,
        has_mail: bool,
    ) -> tuple[Transition, Prepared]:
        """Step through `pending` in order. Stops early at a slow effect (its outcome
        decides what comes next) and at an answer that left the step where it was (a
        refusal: what follows was meant for a screen the person never saw).

        A slow effect's preparation (the look-up limits' admission) runs here, in the
        step's own transaction; it may settle the outcome at once (refused by a limit)."""
        transition = Transition(state)
        for position, inp in enumerate(pending):
            more = position < len(pending) - 1
            if (
                more
                and inp.kind is InputKind.TEXT
                and router.prompt_for(state).expects is Expect.TEXT
            ):
                return router.ambiguous_answer(state), Prepared()
            mail = await self._held_mail(unit, filer, inp) if has_mail else []
            transition = router.step(state, inp, mail)
            effect = transition.effect
            if effect is not None and effect.in_transaction:
                outcome = await self._effects.run_in(unit, effect, filer)
                transition = router.resume(transition.state, outcome)
            elif effect is not None:
                prepared = await self._effects.prepare_in(unit, effect, filer)
                if prepared.outcome is None:
                    return transition, prepared
                transition = router.resume(transition.state, prepared.outcome)
            if more and (transition.state.step, transition.state.data) == (state.step, state.data):
                return transition, Prepared()
            state = transition.state
        return transition, Prepared()

    def _replay(self, row: ConversationRow, state: DialogState) -> Reply:
        """The screen last shown for this turn; while an effect runs, its waiting prompt."""
        if row.sealed_last_reply is not None and state.step == row.step:
            try:
                plain = self._keys.unseal(row.sealed_last_reply, context=self._reply_context(row))
                return reply_from_json(plain.decode())
            except (SealBroken, ValueError, KeyError):
                log.warning("the last reply on %s could not be read; showing the step", row.channel)
        return router.prompt_for(state)

    def _remember(self, row: ConversationRow, reply: Reply | None) -> None:
        """Keep the reply a repeat must show again (None while an effect is under way)."""
        row.sealed_last_reply = (
            None
            if reply is None
            else self._keys.seal(reply_to_json(reply).encode(), context=self._reply_context(row))
        )

    async def _resume_after(
        self,
        transition: Transition,
        row: ConversationRow,
        prepared: Prepared,
        files: FileSource | None,
        lookup_budget_s: float | None,
        *,
        remember: bool,
    ) -> Reply:
        """Run the slow effect, then save its outcome with one guarded UPDATE: only if the
        row still waits at the same step (not expired, not moved on by another input)."""
        assert transition.effect is not None
        outcome = await self._effects.run_slow(
            transition.effect,
            channel=row.channel,
            files=files,
            lookup_budget_s=lookup_budget_s,
            prepared=prepared,
        )
        resumed = router.resume(transition.state, outcome)
        assert resumed.reply is not None
        waiting_step = row.step
        self._encode(row, resumed.state, waiting=False)
        if remember:
            self._remember(row, resumed.reply)
        async with self._database.autocommit() as unit:
            if await conversation_store.save_if_at(unit, row, step=waiting_step, now=self._clock()):
                return resumed.reply
            # The wait expired (or another input moved on): the outcome is stale.
            current = await conversation_store.load(unit, row.channel, row.address_hash)
        if current is None:
            return router.prompt_for(router.new_state(DEFAULT_LANGUAGE))
        return router.prompt_for(self._decode(current, transition.state.context))

    async def _role(self, unit: Unit, facilitator_id: str | None) -> FacilitatorRole | None:
        """The facilitator this chat speaks for, with their areas. Their steps run in a full
        unit (a lean one raises NeedsSession here): they are few, and audited."""
        if facilitator_id is None:
            return None
        areas = await FacilitatorRepository(await unit.session()).areas_of([facilitator_id])
        return FacilitatorRole(facilitator_id, areas[facilitator_id])

    async def _held_mail(self, unit: Unit, filer: Filer, inp: Input) -> list[Notification]:
        """Messages kept for a channel that cannot push, shown once when a session starts."""
        if inp.kind is not InputKind.START:
            return []
        rows = await OutboundRepository(await unit.session()).take_held(
            filer.channel, filer.address_hash, self._clock(), HELD_MESSAGES_SHOWN
        )
        mail = []
        for row in rows:
            try:
                mail.append(notification_from_json(row.payload))
            except (UnknownNotification, ValueError, KeyError):
                log.warning("a held message could not be read; skipped")
        return mail

    def _blank(self, channel: str, address_hash: str, language: str) -> ConversationRow:
        """The row of someone never seen before: asked for consent first."""
        now = self._clock()
        fresh = router.new_state(language)
        return ConversationRow(
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
            recent_messages=None,
        )

    def _decode(self, row: ConversationRow, context: DialogContext) -> DialogState:
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

    def _encode(self, row: ConversationRow, state: DialogState, *, waiting: bool) -> None:
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
    def _seal_context(row: ConversationRow) -> str:
        return conversation_seal_context(row.channel, row.address_hash)

    @staticmethod
    def _reply_context(row: ConversationRow) -> str:
        return last_reply_seal_context(row.channel, row.address_hash)


def conversation_seal_context(channel: str, address_hash: str) -> str:
    return f"conversation:{channel}:{address_hash}"


def last_reply_seal_context(channel: str, address_hash: str) -> str:
    return f"last-reply:{channel}:{address_hash}"
