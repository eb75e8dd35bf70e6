"""The ids of a chat's last messages applied, so one Telegram delivers twice is applied once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column with no default: an ALTER that rewrites nothing on PostgreSQL,
    # and on SQLite a plain ADD COLUMN (no batch copy of the table).
    op.add_column("conversations", sa.Column("recent_messages", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as table:
        table.drop_column("recent_messages")
