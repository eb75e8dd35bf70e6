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
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy.ext.asyncio import AsyncSession

from bot.crypto import KeyRing, SealBroken
from bot.dialogs import router
from bot.dialogs.model import DialogContext, DialogState, Input, InputKind, Reply, Transition
from bot.effects import EffectRunner
from bot.filings import Filer
from bot.i18n import DEFAULT_LANGUAGE
from bot.notifications import Notification, UnknownNotification, notification_from_json
from bot.photo_intake import FileSource
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
    ) -> None:
        self._database = database
        self._keys = keys
        self._effects = effects
        self._idle_timeout = idle_timeout
        self._clock = clock
        self._area_rule = area_rule

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
        address_hash = self._keys.address_hash(channel, address)
        context = DialogContext(photos=files is not None, area_rule=self._area_rule)
        filer = Filer(channel=channel, address=address, address_hash=address_hash)
        async with self._database.transaction() as session:
            row = await self._lock(session, channel, address_hash)
            state = self._decode(row, context)
            mail = await self._held_mail(session, channel, address_hash, inp)
            transition = router.step(state, inp, mail)
            effect = transition.effect
            if effect is not None and effect.in_transaction:
                outcome = await self._effects.run_in(session, effect, filer)
                transition = router.resume(transition.state, outcome)
            self._encode(row, transition.state, waiting=transition.effect is not None)
        log.debug("%s %s: %s -> %s", channel, inp, state.step, transition.state.step)
        if transition.effect is None:
            assert transition.reply is not None
            return transition.reply
        return await self._resume_after(
            transition, channel, address_hash, context, files, lookup_budget_s
        )

    async def _resume_after(
        self,
        transition: Transition,
        channel: str,
        address_hash: str,
        context: DialogContext,
        files: FileSource | None,
        lookup_budget_s: float | None,
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
        return f"conversation:{row.channel}:{row.address_hash}"
