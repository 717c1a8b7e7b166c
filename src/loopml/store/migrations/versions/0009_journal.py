"""Labels tied to their prediction's model version, and idempotent by journal entry id.

Revision ID: 0009_journal
Revises: 0008_monitor_lease
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_journal"
down_revision = "0008_monitor_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("model_version", sa.String(32), nullable=True))
        batch.add_column(sa.Column("entry_id", sa.String(32), nullable=True))
        batch.create_index("ix_feedback_entry_id", ["entry_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index("ix_feedback_entry_id")
        batch.drop_column("entry_id")
        batch.drop_column("model_version")
