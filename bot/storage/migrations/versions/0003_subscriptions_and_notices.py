"""Subscriptions to status changes, one notice per subscription and quarter, and where
each quarter's run stands.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.storage.models import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notice_runs",
        sa.Column("quarter", sa.String(length=8), nullable=False),
        sa.Column("cursor", sa.String(length=512), nullable=True),
        sa.Column("ingested", sa.Boolean(), nullable=False),
        sa.Column("changes_read", sa.Integer(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("quarter", name=op.f("pk_notice_runs")),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_address", sa.LargeBinary(), nullable=False),
        sa.Column("nik_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_nik", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("retired_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint(
            "channel", "address_hash", "nik_hash", name="uq_subscriptions_who_whom"
        ),
    )
    op.create_index("ix_subscriptions_address", "subscriptions", ["channel", "address_hash"])
    op.create_index("ix_subscriptions_nik_hash", "subscriptions", ["nik_hash"])

    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("quarter", sa.String(length=8), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_notices_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("subscription_id", "quarter", name="uq_notices_subscription_quarter"),
    )
    op.create_index("ix_notices_due", "notices", ["quarter", "state"])


def downgrade() -> None:
    op.drop_index("ix_notices_due", table_name="notices")

    op.drop_table("notices")
    op.drop_index("ix_subscriptions_nik_hash", table_name="subscriptions")
    op.drop_index("ix_subscriptions_address", table_name="subscriptions")

    op.drop_table("subscriptions")
    op.drop_table("notice_runs")
