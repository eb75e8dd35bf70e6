"""Filings, their photos and history, the outbox to the registry, outbound messages and
feed cursors.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.storage.models import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "filings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("ticket", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=True),
        sa.Column("sealed_document", sa.LargeBinary(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("filer_channel", sa.String(length=16), nullable=False),
        sa.Column("filer_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_filer_address", sa.LargeBinary(), nullable=False),
        sa.Column("facilitator_id", sa.String(length=64), nullable=True),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("stage_reason", sa.String(length=64), nullable=True),
        sa.Column("registry_ticket", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filings")),
        sa.UniqueConstraint("ticket", name=op.f("uq_filings_ticket")),
    )
    op.create_index("ix_filings_filer", "filings", ["filer_channel", "filer_hash", "created_at"])
    op.create_index("ix_filings_subject", "filings", ["kind", "subject_hash", "stage"])

    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_address", sa.LargeBinary(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
    )
    op.create_index(
        "ix_outbound_messages_address", "outbound_messages", ["channel", "address_hash", "state"]
    )
    op.create_index("ix_outbound_messages_due", "outbound_messages", ["state", "next_attempt_at"])

    op.create_table(
        "registry_cursors",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("cursor", sa.String(length=512), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_registry_cursors")),
    )
    op.create_table(
        "filing_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("filing_id", sa.String(length=36), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["filing_id"],
            ["filings.id"],
            name=op.f("fk_filing_events_filing_id_filings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filing_events")),
    )
    op.create_index("ix_filing_events_filing_id", "filing_events", ["filing_id"])

    op.create_table(
        "filing_photos",
        sa.Column("filing_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["filing_id"],
            ["filings.id"],
            name=op.f("fk_filing_photos_filing_id_filings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("filing_id", "position", name=op.f("pk_filing_photos")),
    )
    op.create_index("ix_filing_photos_sha256", "filing_photos", ["sha256"])

    op.create_table(
        "outbox",
        sa.Column("filing_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["filing_id"],
            ["filings.id"],
            name=op.f("fk_outbox_filing_id_filings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("filing_id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")

    op.drop_table("outbox")
    op.drop_index("ix_filing_photos_sha256", table_name="filing_photos")

    op.drop_table("filing_photos")
    op.drop_index("ix_filing_events_filing_id", table_name="filing_events")

    op.drop_table("filing_events")
    op.drop_table("registry_cursors")
    op.drop_index("ix_outbound_messages_due", table_name="outbound_messages")
    op.drop_index("ix_outbound_messages_address", table_name="outbound_messages")

    op.drop_table("outbound_messages")
    op.drop_index("ix_filings_subject", table_name="filings")
    op.drop_index("ix_filings_filer", table_name="filings")

    op.drop_table("filings")
