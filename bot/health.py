"""What the health check reports: is the database answering?"""

from __future__ import annotations

from dataclasses import dataclass

from bot.storage.database import Database


@dataclass(frozen=True, slots=True)
class HealthReport:
    database: bool

    @property
    def ok(self) -> bool:
        return self.database


class Health:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def check(self) -> HealthReport:
        return HealthReport(database=await self._database.ping())
