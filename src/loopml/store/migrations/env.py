"""Alembic environment: migrations run on the connection loopml hands over."""

from __future__ import annotations

from alembic import context

from loopml.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("loopml migrations run through loopml.store.db.upgrade, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
