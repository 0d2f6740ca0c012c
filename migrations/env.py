"""Alembic environment: runs on the URL handed over by ``orchestrator db upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from orchestrator.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("sqlalchemy.url is not set; run migrations with `orchestrator db upgrade`")

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    with engine.connect() as connection:
        # SQLite cannot ALTER most things in place; batch mode copes.
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
