"""A feature phone talking to POST /ussd the way Africa's Talking does (tests and bench)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import aiohttp


@dataclass
class UssdPhone:
    """One handset: dial, then answer screen by screen; `text` accumulates like AT's."""

    http: aiohttp.ClientSession
    url: str
    phone: str = "+628123456789"
    session_id: str = field(default_factory=lambda: f"ATUid_{uuid.uuid4().hex}")
    answers: list[str] = field(default_factory=list)

    async def dial(self) -> str:
        self.session_id = f"ATUid_{uuid.uuid4().hex}"
        self.answers = []
        return await self._post("")

    async def answer(self, text: str) -> str:
        self.answers.append(text)
        return await self._post("*".join(self.answers))

    async def repeat(self) -> str:
        """The gateway's retry after a timeout: the same request again."""
        return await self._post("*".join(self.answers))

    async def answer_lost(self, text: str) -> None:
        """An answer whose request never reached the service (the next one carries it)."""
        self.answers.append(text)

    async def check_status(self, nik: str, name: str) -> str:
        """The whole status check from a dial: menu or consent `1`, NIK, name → last screen."""
        await self.dial()
        await self.answer("1")
        await self.answer(nik)
        return await self.answer(name)

    async def _post(self, text: str) -> str:
        form = {
            "sessionId": self.session_id,
            "serviceCode": "*123*7#",
            "phoneNumber": self.phone,
            "networkCode": "51010",
            "text": text,
        }
        async with self.http.post(self.url, data=form) as response:
            assert response.status == 200, await response.text()
            assert response.content_type == "text/plain"
            return await response.text()
