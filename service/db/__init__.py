"""Database models, sessions and migrations."""

from refflow.db.session import Database, database_for

__all__ = ["Database", "database_for"]
