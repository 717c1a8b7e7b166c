"""Labels tied to their prediction's model version, and idempotent by journal entry id.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
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
