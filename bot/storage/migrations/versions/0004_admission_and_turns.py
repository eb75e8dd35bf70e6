"""Atomic admission counters replace the look-up log; owners' matches; USSD turns.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.storage.models import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_lookup_attempts_subject_key", table_name="lookup_attempts")
    op.drop_table("lookup_attempts")
    op.create_table(
        "admission_counters",
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("window_start", UtcDateTime(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("cap", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "scope", "key_hash", "window_start", name=op.f("pk_admission_counters")
        ),
    )
    op.create_table(
        "nik_matches",
        sa.Column("nik_hash", sa.String(64), nullable=False),
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("matched_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nik_hash", "address_hash", name=op.f("pk_nik_matches")),
    )
    with op.batch_alter_table("conversations") as table:
        table.add_column(sa.Column("turn_session", sa.String(64), nullable=True))
        table.add_column(sa.Column("turn_count", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("sealed_last_reply", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as table:
        table.drop_column("sealed_last_reply")
        table.drop_column("turn_count")
        table.drop_column("turn_session")
    op.drop_table("nik_matches")
    op.drop_table("admission_counters")
    op.create_table(
        "lookup_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(8), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("attempted_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lookup_attempts")),
    )
    op.create_index(
        "ix_lookup_attempts_subject_key", "lookup_attempts", ["subject", "key_hash", "attempted_at"]
    )
