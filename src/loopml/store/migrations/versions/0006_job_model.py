"""Jobs record the registered model as (name, version), not as a display sentence.

Revision ID: 0006_job_model
Revises: 0005
Create Date: 2026-11-30

Rows written before this revision held ``"NAME version N (aliases: ...)"``
in ``registered_model``; they are read back into the two columns.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0006_job_model"
down_revision = "0005"
branch_labels = None
depends_on = None

_SENTENCE = re.compile(r"^(?P<name>.+) version (?P<version>\S+)")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("registered_name", sa.String(255)))
    op.add_column("jobs", sa.Column("registered_version", sa.String(32)))
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("registered_model", sa.Text),
        sa.column("registered_name", sa.String),
        sa.column("registered_version", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(jobs.c.id, jobs.c.registered_model).where(jobs.c.registered_model.isnot(None))
    ).all()
    for job_id, sentence in rows:
        found = _SENTENCE.match(sentence or "")
        if found is not None:
            connection.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(registered_name=found["name"], registered_version=found["version"])
            )
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("registered_model")


def downgrade() -> None:
    op.add_column("jobs", sa.Column("registered_model", sa.Text()))
    jobs = sa.table(
        "jobs",
        sa.column("registered_model", sa.Text),
        sa.column("registered_name", sa.String),
        sa.column("registered_version", sa.String),
    )
    op.execute(
        jobs.update()
        .where(jobs.c.registered_name.isnot(None))
        .values(registered_model=jobs.c.registered_name + " version " + jobs.c.registered_version)
    )
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("registered_name")
        batch.drop_column("registered_version")
