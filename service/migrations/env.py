"""Alembic environment: runs on the connection service.store hands over (config.attributes).

Run through `tdm1-cds migrate` or at start (Store.ensure_schema), never with a URL in an ini file,
so the database URL with its password only ever comes from TDM1_CDS_DATABASE_URL.
"""

from __future__ import annotations

from alembic import context

from service.store import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `tdm1-cds migrate`; it supplies the database connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
