"""Runs dialogs for every channel: load the state, take a step, save, in one transaction.

The state lives in the database (one row per channel + address), so any process can
serve any update and a restart loses nothing. A registry look-up runs between two
transactions, never while a row is locked.
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
from bot.dialogs.model import DialogState, Input, Reply
from bot.i18n import DEFAULT_LANGUAGE
from bot.status_service import StatusService
from bot.storage.database import Database
from bot.storage.models import Conversation
from bot.storage.repositories import ConversationRepository

log = logging.getLogger(__name__)

# A look-up takes seconds; if the process died meanwhile, do not leave the person waiting.
WAITING_STEP_TTL = timedelta(minutes=2)


class DialogEngine:
    def __init__(
        self,
        database: Database,
        keys: KeyRing,
        status: StatusService,
        *,
        idle_timeout: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._keys = keys
        self._status = status
        self._idle_timeout = idle_timeout
        self._clock = clock

    async def handle(
        self, channel: str, address: str, inp: Input, *, lookup_budget_s: float | None = None
    ) -> Reply:
        """Feed one input from `address` on `channel`; return what to show them."""
        address_hash = self._keys.address_hash(channel, address)
        async with self._database.transaction() as session:
            row = await self._lock(session, channel, address_hash)
            state = self._decode(row)
            transition = router.step(state, inp)
            self._encode(row, transition.state)
        log.debug("%s %s: %s -> %s", channel, inp, state.step, transition.state.step)
        if transition.effect is None:
            assert transition.reply is not None
            return transition.reply

        lookup = transition.effect
        outcome = await self._status.check(
            channel=channel,
            address_hash=address_hash,
            nik=lookup.nik,
            name=lookup.name,
            budget_s=lookup_budget_s,
        )
        async with self._database.transaction() as session:
            row = await self._lock(session, channel, address_hash)
            state = self._decode(row)
            resumed = router.resume(state, outcome)
            if state.step == "status.waiting":
                self._encode(row, resumed.state)
        assert resumed.reply is not None
        return resumed.reply

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

    def _decode(self, row: Conversation) -> DialogState:
        state = DialogState(
            step=row.step, language=row.language, consent_version=row.consent_version
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

    def _encode(self, row: Conversation, state: DialogState) -> None:
        now = self._clock()
        if state.consent_version != row.consent_version:
            row.consented_at = now if state.consent_version else None
        row.language = state.language
        row.consent_version = state.consent_version
        row.step = state.step
        row.updated_at = now
        ttl = WAITING_STEP_TTL if state.step == "status.waiting" else self._idle_timeout
        row.step_expires_at = now + ttl
        payload = json.dumps({"data": dict(state.data), "offered": list(state.offered)})
        row.sealed_data = self._keys.seal(payload.encode(), context=self._seal_context(row))

    @staticmethod
    def _seal_context(row: Conversation) -> str:
        return f"conversation:{row.channel}:{row.address_hash}"
