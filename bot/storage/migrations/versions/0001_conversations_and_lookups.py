"""Conversations (dialog state per channel + address) and look-up attempts (rate limits).

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.storage.models import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("consent_version", sa.String(16), nullable=True),
        sa.Column("consented_at", UtcDateTime(), nullable=True),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("sealed_data", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("step_expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "address_hash", name=op.f("pk_conversations")),
    )
    op.create_table(
        "lookup_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(8), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("attempted_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lookup_attempts")),
    )
    op.create_index(
        "ix_lookup_attempts_subject_key",
        "lookup_attempts",
        ["subject", "key_hash", "attempted_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_lookup_attempts_subject_key", table_name="lookup_attempts")
    op.drop_table("lookup_attempts")
    op.drop_table("conversations")
