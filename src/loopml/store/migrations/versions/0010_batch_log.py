"""The columnar batch log: one row per scored chunk, pointing at its Parquet segment.

Revision ID: 0010_batch_log
Revises: 0009_journal
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_batch_log"
down_revision = "0009_journal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_segments",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("id_prefix", sa.String(20), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("skew", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_batch_segments_batch_id", "batch_segments", ["batch_id"], unique=True)
    op.create_index("ix_batch_segments_id_prefix", "batch_segments", ["id_prefix"])
    op.create_index("ix_batch_segments_model_name", "batch_segments", ["model_name"])
    op.create_index("ix_batch_segments_created_at", "batch_segments", ["created_at"])


def downgrade() -> None:
    op.drop_table("batch_segments")
