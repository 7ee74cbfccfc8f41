"""JSON-lines logs with the request id, carried from intake into the tasks.

One line per record: ``{"ts", "level", "logger", "msg", "request_id", "task",
"process"}`` plus the exception type when there is one. Tracebacks keep their
frames but never the exception's message (it may quote request data). Nothing
here adds patient data; loggers in refflow log ids and counts only.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import sys
import traceback
import uuid

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "refflow_request_id", default=None)
task_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "refflow_task", default=None)

REQUEST_ID_HEADER = "refflow_request_id"


def request_id_for(incoming: str | None) -> str:
    """A request's id: the client's ``X-Request-Id`` when it is 8-64 letters
    and digits, else a new one."""
    incoming = incoming or ""
    return incoming if 8 <= len(incoming) <= 64 and incoming.isalnum() else uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request (set by the web app) or task being handled."""
    return request_id_var.get()


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        record.task = task_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "process": record.process,
        }
        rid = getattr(record, "request_id", None) or current_request_id()
        if rid:
            entry["request_id"] = rid
        task = getattr(record, "task", None) or task_var.get()
        if task:
            entry["task"] = task
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _exc, tb = record.exc_info
            entry["exc_type"] = exc_type.__name__
            entry["traceback"] = "".join(traceback.format_tb(tb))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", stream=None) -> None:
    """Send every log record to ``stream`` (stderr) as JSON lines (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_refflow_json", False):
            return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler._refflow_json = True  # type: ignore[attr-defined]
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(os.environ.get("REFFLOW_LOG_LEVEL", level).upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # readiness checks run it often
    for name in ("gunicorn.error", "celery", "celery.app.trace"):
        lg = logging.getLogger(name)
        for old in list(lg.handlers):
            lg.removeHandler(old)
        lg.propagate = True
