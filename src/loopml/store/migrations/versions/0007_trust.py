"""Model trust: the artifacts' hash of each version registered through loopml, and approvals.

Revision ID: 0007_trust
Revises: 0006_job_model
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_trust"
down_revision = "0006_job_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_versions",
        sa.Column("model_name", sa.String(255), primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("registrar", sa.String(255), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "version_approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_version_approvals_model", "version_approvals", ["model_name", "version"])


def downgrade() -> None:
    op.drop_index("ix_version_approvals_model", table_name="version_approvals")
    op.drop_table("version_approvals")
    op.drop_table("registered_versions")
