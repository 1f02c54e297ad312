"""Alembic environment: runs against the engine handed in by `voice_agent.store.migrate`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import voice_agent.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata
connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
