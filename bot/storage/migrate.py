"""Apply Alembic migrations programmatically (`bansos-bot migrate`, and at start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from bot.storage.database import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


async def upgrade_to_head(database: Database) -> None:
    """Bring the schema to the newest revision over the database's own engine."""
    async with database.engine.connect() as connection:
        await connection.run_sync(_upgrade)
        await connection.commit()


def _upgrade(sync_connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_connection
    command.upgrade(config, "head")


async def is_at_head(database: Database) -> bool:
    """True when the database has every migration applied."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    def read(sync_connection: Connection) -> str | None:
        return MigrationContext.configure(sync_connection).get_current_revision()

    async with database.engine.connect() as connection:
        current = await connection.run_sync(read)
    return current == head
