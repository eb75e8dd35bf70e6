"""Repositories: intention-revealing queries over one session (the caller's unit of work)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Conversation


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def forget_unconsented_idle_since(self, moment: datetime) -> int:
        """Drop conversations of people who never agreed (or withdrew) and left long ago."""
        result = await self._session.execute(
            delete(Conversation).where(
                Conversation.consent_version.is_(None), Conversation.updated_at < moment
            )
        )
        return cast(CursorResult[Any], result).rowcount or 0
