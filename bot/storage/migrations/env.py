"""Alembic environment: runs on the connection handed over by bot.storage.migrate.

For `alembic revision --autogenerate` from a shell it opens DATABASE_URL itself.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bot.settings import load_settings
from bot.storage.database import open_database
from bot.storage.models import Base

target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_settings() -> None:
    database = open_database(load_settings().database_url)
    try:
        async with database.engine.connect() as connection:
            await connection.run_sync(run_on)
            await connection.commit()
    finally:
        await database.dispose()


handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    run_on(handed_over)
else:
    asyncio.run(run_from_settings())
