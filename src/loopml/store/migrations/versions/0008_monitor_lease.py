"""The monitor lease (one monitoring process per model at a time) and the pass record.

Revision ID: 0008_monitor_lease
Revises: 0007_trust
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_monitor_lease"
down_revision = "0007_trust"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_leases",
        sa.Column("model_name", sa.String(255), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "monitor_passes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False, index=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("monitor_passes")
    op.drop_table("monitor_leases")
