"""Engines and sessions: one ``Database`` per process, shared by web and worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, schema: str | None = None, **kwargs) -> Engine:
    """Create an engine with the settings each backend needs.

    SQLite: WAL journal, a 30 s busy timeout and foreign keys on, so the web
    process, the worker and the scheduler can share one file. PostgreSQL: a
    dropped connection is replaced at checkout instead of failing a request
    (SQLAlchemy's pre-ping); ``schema`` sets the search path (tests give each
    run its own schema).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so
        # SELECT ... then UPDATE in one transaction cannot interleave writers.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):  # pragma: no cover - trivial
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args = dict(kwargs.pop("connect_args", {}))
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, connect_args=connect_args, **kwargs)


def _private_sqlite_file(url: str) -> None:
    """Create the SQLite database file readable by its owner only (it holds
    patient data); SQLite gives its -wal and -shm files the same mode. A file
    an earlier version created with the umask's mode is narrowed too."""
    from sqlalchemy.engine import make_url

    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name):
            os.chmod(name, 0o600)


class Database:
    """An engine and its session factory. ``session_info`` is copied into every
    session's ``info`` (``database_for`` puts the settings there, which tell
    the state machine whose plugins hear of status changes)."""

    def __init__(self, url: str, *, schema: str | None = None,
                 session_info: dict | None = None, **engine_kwargs) -> None:
        self.url = url
        self.schema = schema
        self.engine = make_engine(url, schema=schema, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False,
                                         info=dict(session_info or {}))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessionmaker() as session:
            with session.begin():
                yield session

    def dispose(self) -> None:
        self.engine.dispose()


_databases: dict[tuple[str, str | None], Database] = {}


def database_for(settings) -> Database:
    """The process-wide ``Database`` for these settings (one pool per URL)."""
    key = (settings.sqlalchemy_url, settings.database_schema or None)
    db = _databases.get(key)
    if db is None:
        if settings.sqlalchemy_url.startswith("sqlite"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            _private_sqlite_file(settings.sqlalchemy_url)
        db = _databases[key] = Database(key[0], schema=key[1],
                                        session_info={"settings": settings})
    return db
