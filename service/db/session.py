"""Engines and sessions: one ``Database`` per process, shared by web and worker.

Every wait on PostgreSQL is bounded (docs/operations.md, "Timeouts"):

- connecting: ``connect_timeout`` (psycopg), default 3 s;
- a pooled connection: ``pool_timeout``, default 3 s;
- a statement on a server that answers: the server's ``statement_timeout``,
  default 10 s (migrations run without one: ``refflow.db.migrate``);
- a server that stops answering (a hung process, a partition) while a
  statement, commit, rollback or pre-ping waits: ``ReplyWatch``. A round trip
  still waiting after ``PROBE_AFTER_SECONDS`` makes it try a fresh connection
  to the same server; if that cannot connect within the connect timeout, the
  server is not answering: every round trip waiting that long is cut (its
  socket shut down, so psycopg raises and SQLAlchemy discards the connection)
  and new connections fail at once, until a probe connects again. A slow
  statement on a server that still answers is left to ``statement_timeout``.
  TCP keepalives and ``tcp_user_timeout`` also close a connection whose peer
  vanished from the network; they cannot see a peer whose kernel still
  acknowledges (a frozen process), which is why the probe exists.

Engines are built with ``hide_parameters``: a statement that fails is logged
and raised without its bound parameters (patient data).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("refflow.db")

CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_SECONDS = 10.0
POOL_TIMEOUT_SECONDS = 3.0
PROBE_AFTER_SECONDS = 1.0  # a round trip waiting this long asks: does the server answer?
PROBE_EVERY_SECONDS = 2.0  # while a slow statement runs on a server that answers
REPROBE_PAUSE_SECONDS = 0.5  # between probes while the server does not answer
TCP_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 15, "keepalives_interval": 5,
                 "keepalives_count": 3, "tcp_user_timeout": 10_000}


class ReplyWatch:
    """Bounds the round trips of one engine's connections to a server that
    stopped answering (see the module docstring). One daemon thread per
    engine, started on the first round trip, asleep while nothing waits."""

    def __init__(self, connect_timeout: int) -> None:
        self.connect_timeout = connect_timeout
        self.not_answering_since: float | None = None
        self._cond = threading.Condition()
        self._waiting: dict[int, tuple[float, object]] = {}  # id -> (started, connection)
        self._ids = itertools.count()
        self._connect_params: tuple[list, dict] | None = None
        self._thread: threading.Thread | None = None
        self._probing = False
        self._last_probe = float("-inf")
        self._last_answer = float("-inf")
        self._cut_ids: set[int] = set()  # round trips already cut

    def remember(self, cargs, cparams) -> None:
        """The arguments a connection was made with (a probe reuses them)."""
        if self._connect_params is None:
            self._connect_params = (list(cargs), dict(cparams))

    @contextmanager
    def round_trip(self, connection) -> Iterator[None]:
        ident = next(self._ids)
        with self._cond:
            self._waiting[ident] = (time.monotonic(), connection)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="refflow-db-watch",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                del self._waiting[ident]
                self._cut_ids.discard(ident)

    def connect_timed_out(self) -> None:
        """A new connection got no answer within the connect timeout."""
        with self._cond:
            self._mark_not_answering(time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="refflow-db-watch",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    # -- the watch thread ------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._waiting and self.not_answering_since is None and not self._probing:
                    self._cond.wait()
                else:
                    self._cond.wait(0.1)
                now = time.monotonic()
                overdue = [(ident, started, conn) for ident, (started, conn)
                           in self._waiting.items() if now - started >= PROBE_AFTER_SECONDS]
                if self.not_answering_since is not None:
                    for ident, _started, conn in overdue:
                        self._cut_once(ident, conn)
                    probe = now - self._last_probe >= REPROBE_PAUSE_SECONDS
                else:
                    probe = bool(overdue) and now - self._last_answer >= PROBE_EVERY_SECONDS
                if probe and not self._probing and self._connect_params is not None:
                    self._probing = True
                    self._last_probe = now
                    threading.Thread(target=self._probe, args=(now,), daemon=True,
                                     name="refflow-db-probe").start()

    def _probe(self, asked_at: float) -> None:
        answers = self._server_answers()
        with self._cond:
            self._probing = False
            if answers:
                self._last_answer = time.monotonic()
                if self.not_answering_since is not None:
                    log.warning("database: the server answers again after %.1f s",
                                self._last_answer - self.not_answering_since)
                    self.not_answering_since = None
            else:
                self._mark_not_answering(asked_at)
                for ident, (started, conn) in list(self._waiting.items()):
                    if asked_at - started >= PROBE_AFTER_SECONDS:
                        self._cut_once(ident, conn)
            self._cond.notify()

    def _cut_once(self, ident: int, connection) -> None:
        if ident not in self._cut_ids:
            self._cut_ids.add(ident)
            _cut(connection)

    def _mark_not_answering(self, since: float) -> None:
        if self.not_answering_since is None:
            self.not_answering_since = since
            log.warning("database: the server does not answer; waiting round trips are cut "
                        "and new connections fail until it answers again")

    def _server_answers(self) -> bool:
        import psycopg

        cargs, cparams = self._connect_params
        params = {k: v for k, v in cparams.items() if k != "cursor_factory"}
        params["connect_timeout"] = self.connect_timeout
        try:
            psycopg.connect(*cargs, **params).close()
        except psycopg.OperationalError as exc:
            # A server that refuses (too many clients, starting up) still answers.
            return getattr(exc, "sqlstate", None) is not None
        return True


def _cut(connection) -> None:
    """Shut down the socket of a connection whose round trip is waiting (its
    owner is blocked in it, so the descriptor is still the connection's);
    psycopg then raises and the connection is discarded."""
    try:
        fd = os.dup(connection.pgconn.socket)
    except Exception:  # noqa: BLE001 - already closed: nothing to cut
        return
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def _watched_classes():
    """psycopg connection and cursor classes whose round trips ``ReplyWatch`` bounds."""
    import psycopg

    class WatchedCursor(psycopg.Cursor):
        def execute(self, query, params=None, **kwargs):
            with self.connection.reply_watch.round_trip(self.connection):
                return super().execute(query, params, **kwargs)

        def executemany(self, query, params_seq, **kwargs):
            with self.connection.reply_watch.round_trip(self.connection):
                return super().executemany(query, params_seq, **kwargs)

    class WatchedConnection(psycopg.Connection):
        reply_watch: ReplyWatch

        def commit(self) -> None:
            with self.reply_watch.round_trip(self):
                super().commit()

        def rollback(self) -> None:
            with self.reply_watch.round_trip(self):
                super().rollback()

    return WatchedConnection, WatchedCursor


def make_engine(url: str, *, schema: str | None = None,
                connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
                statement_timeout: float = STATEMENT_TIMEOUT_SECONDS,
                pool_timeout: float = POOL_TIMEOUT_SECONDS, **kwargs) -> Engine:
    """Create an engine with the settings each backend needs.

    SQLite: WAL journal, a 30 s busy timeout and foreign keys on, so the web
    process, the worker and the scheduler can share one file. PostgreSQL: a
    dropped connection is replaced at checkout instead of failing a request
    (SQLAlchemy's pre-ping); ``schema`` sets the search path (tests give each
    run its own schema); every wait is bounded (module docstring).
    ``statement_timeout`` 0 means none. Both: no bound parameter in a log or
    an error message (``hide_parameters``).
    """
    kwargs.setdefault("hide_parameters", True)
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
    connect_args = {**TCP_KEEPALIVE, **kwargs.pop("connect_args", {})}
    connect_args["connect_timeout"] = connect_timeout
    options = [f"-c statement_timeout={int(statement_timeout * 1000)}"]
    if schema:
        options.insert(0, f"-c search_path={schema}")
    connect_args["options"] = " ".join(options)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_timeout", pool_timeout)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    watch = ReplyWatch(connect_timeout)
    connection_class, cursor_class = _watched_classes()

    @event.listens_for(engine, "do_connect")
    def _watched_connect(_dialect, _record, cargs, cparams):
        import psycopg

        watch.remember(cargs, cparams)
        if watch.not_answering_since is not None:
            raise psycopg.OperationalError("the database server is not answering")
        try:
            connection = connection_class.connect(*cargs, cursor_factory=cursor_class,
                                                  **cparams)
        except psycopg.errors.ConnectionTimeout:
            watch.connect_timed_out()
            raise
        connection.reply_watch = watch
        return connection

    return engine


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


_databases: dict[tuple, Database] = {}


def database_for(settings) -> Database:
    """The process-wide ``Database`` for these settings (one pool per URL)."""
    timeouts = {"connect_timeout": settings.db_connect_timeout_seconds,
                "statement_timeout": settings.db_statement_timeout_seconds,
                "pool_timeout": settings.db_pool_timeout_seconds}
    key = (settings.sqlalchemy_url, settings.database_schema or None, *timeouts.values())
    db = _databases.get(key)
    if db is None:
        if settings.sqlalchemy_url.startswith("sqlite"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            _private_sqlite_file(settings.sqlalchemy_url)
            timeouts = {}  # SQLite waits on its own lock (30 s busy timeout), not a server
        db = _databases[key] = Database(key[0], schema=key[1],
                                        session_info={"settings": settings}, **timeouts)
    return db
