"""PKH facilitators: enrolment with a one-time activation code, their kecamatan, their
households and the audit of what they do.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.storage.models import UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "facilitators",
        sa.Column("id", sa.String(8), nullable=False),
        sa.Column("sealed_name", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_phone", sa.LargeBinary(), nullable=False),
        sa.Column("phone_hash", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("deactivated_at", UtcDateTime(), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("code_expires_at", UtcDateTime(), nullable=True),
        sa.Column("code_used_at", UtcDateTime(), nullable=True),
        sa.Column("chat_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilitators")),
        sa.UniqueConstraint("phone_hash", name=op.f("uq_facilitators_phone_hash")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_facilitators_code_hash")),
        sa.UniqueConstraint("chat_hash", name=op.f("uq_facilitators_chat_hash")),
    )
    op.create_table(
        "facilitator_areas",
        sa.Column("facilitator_id", sa.String(8), nullable=False),
        sa.Column("kecamatan", sa.String(6), nullable=False),
        sa.ForeignKeyConstraint(
            ["facilitator_id"],
            ["facilitators.id"],
            name=op.f("fk_facilitator_areas_facilitator_id_facilitators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("facilitator_id", "kecamatan", name=op.f("pk_facilitator_areas")),
    )
    op.create_table(
        "facilitator_households",
        sa.Column("facilitator_id", sa.String(8), nullable=False),
        sa.Column("nik_hash", sa.String(64), nullable=False),
        sa.Column("sealed_nik", sa.LargeBinary(), nullable=False),
        sa.Column("added_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["facilitator_id"],
            ["facilitators.id"],
            name=op.f("fk_facilitator_households_facilitator_id_facilitators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "facilitator_id", "nik_hash", name=op.f("pk_facilitator_households")
        ),
    )
    op.create_table(
        "facilitator_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("facilitator_id", sa.String(8), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("nik_hash", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["facilitator_id"],
            ["facilitators.id"],
            name=op.f("fk_facilitator_audit_facilitator_id_facilitators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilitator_audit")),
    )
    op.create_index(
        "ix_facilitator_audit_facilitator", "facilitator_audit", ["facilitator_id", "at"]
    )


def downgrade() -> None:
    op.drop_index("ix_facilitator_audit_facilitator", table_name="facilitator_audit")
    op.drop_table("facilitator_audit")
    op.drop_table("facilitator_households")
    op.drop_table("facilitator_areas")
    op.drop_table("facilitators")
