"""Subscriptions held by a PKH facilitator: their notices go out as one digest per chat.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@contextmanager
def notices_kept() -> Iterator[None]:
    """On SQLite, batch mode copies `subscriptions` and drops the old table; foreign keys
    being on, the drop deletes every notice (ON DELETE CASCADE), and with them the record
    that keeps a quarter from being sent twice. They are kept aside and put back."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMP TABLE notices_kept AS SELECT * FROM notices")
    yield
    if sqlite:
        op.execute("INSERT INTO notices SELECT * FROM notices_kept")
        op.execute("DROP TABLE notices_kept")


def upgrade() -> None:
    with notices_kept(), op.batch_alter_table("subscriptions") as table:
        table.add_column(sa.Column("facilitator_id", sa.String(8), nullable=True))
        table.create_foreign_key(
            op.f("fk_subscriptions_facilitator_id_facilitators"),
            "facilitators",
            ["facilitator_id"],
            ["id"],
            ondelete="SET NULL",
        )
        # The facilitator's cap counts their active subscriptions; the run finds those of
        # a deactivated facilitator to retire them.
        table.create_index("ix_subscriptions_facilitator", ["facilitator_id", "state"])


def downgrade() -> None:
    with notices_kept(), op.batch_alter_table("subscriptions") as table:
        table.drop_index("ix_subscriptions_facilitator")
        table.drop_constraint(
            op.f("fk_subscriptions_facilitator_id_facilitators"), type_="foreignkey"
        )
        table.drop_column("facilitator_id")
