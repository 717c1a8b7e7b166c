"""Monitoring: stored checks with their figures, and the retrain guard.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_checks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("monitor_run_id", sa.String(32), nullable=False, index=True),
        sa.Column("model_name", sa.String(255), nullable=False, index=True),
        sa.Column("model_version", sa.String(32)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("window_index", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "retrain_guards",
        sa.Column("model_name", sa.String(255), primary_key=True),
        sa.Column("in_flight_id", sa.String(32)),
        sa.Column("in_flight_since", sa.DateTime(timezone=True)),
        sa.Column("last_requested_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "retrain_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model_name", sa.String(255), nullable=False, index=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("job_id", sa.String(255)),
        sa.Column("error", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("retrain_requests")
    op.drop_table("retrain_guards")
    op.drop_table("monitor_checks")
