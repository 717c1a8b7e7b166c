"""What a run needs recorded to be reproduced: seed, threads, smoke, code and environment.

Revision ID: 0011_provenance
Revises: 0010_batch_log
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_provenance"
down_revision = "0010_batch_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("seed", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("smoke", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("code_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("environment_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reproducibility", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("reproducibility")
        batch.drop_column("environment_hash")
        batch.drop_column("code_hash")
        batch.drop_column("smoke")
        batch.drop_column("seed")
