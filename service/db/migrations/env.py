"""Alembic environment: runs on the connection refflow hands it (see refflow.db.migrate)."""

from alembic import context

from refflow.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("refflow migrations run online only: use `refflow db upgrade`")
run_migrations_online()
