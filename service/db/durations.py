"""Seconds between two timestamps, computed in SQL on either database."""

from __future__ import annotations

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


class seconds_between(FunctionElement):  # noqa: N801 - used like a SQL function
    """Seconds from the first timestamp to the second, as a float, in SQL."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between, "postgresql")
def _seconds_between_pg(element, compiler, **kw):
    earlier, later = list(element.clauses)
    # date_part gives a float (EXTRACT gives a numeric since PostgreSQL 14)
    return (f"date_part('epoch', {compiler.process(later, **kw)} - "
            f"{compiler.process(earlier, **kw)})")


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element, compiler, **kw):
    earlier, later = list(element.clauses)
    return (f"((julianday({compiler.process(later, **kw)}) - "
            f"julianday({compiler.process(earlier, **kw)})) * 86400.0)")
