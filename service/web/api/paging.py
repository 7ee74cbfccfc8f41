"""The query of a paginated list (``?status=a,b&limit=50&cursor=…``) read and
checked once for every list of the API, and the ``next`` link of a page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flask import request

from refflow.web.errors import ApiError

MAX_PAGE = 200
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class ListQuery:
    statuses: list[str]
    limit: int
    cursor: str | None

    def next_link(self, path: str, next_cursor: str | None) -> dict:
        """``{"links": {"next": …}}`` for a page with a next one, else ``{}``."""
        if not next_cursor:
            return {}
        args = {"cursor": next_cursor, "limit": self.limit}
        if self.statuses:
            args["status"] = ",".join(self.statuses)
        return {"links": {"next": path + "?" + "&".join(f"{k}={v}" for k, v in args.items())}}


def list_query(statuses: Sequence[str], cursor_is_sound: Callable[[str], bool]) -> ListQuery:
    """The request's list query, or a 400 naming the parameter: a status not in
    ``statuses``, a limit outside 1..MAX_PAGE, a cursor this API did not give
    out (checked before any query: a made-up one could hold anything)."""
    wanted = [s for value in request.args.getlist("status") for s in value.split(",")]
    unknown = sorted(set(wanted) - set(statuses))
    if unknown:
        raise ApiError(400, "unknown status: " + ", ".join(u[:40] or "(empty)" for u in unknown),
                       fields={"status": "one of " + ", ".join(statuses)})
    try:
        limit = int(request.args.get("limit", DEFAULT_PAGE))
    except ValueError:
        raise ApiError(400, "limit must be a whole number", fields={"limit": "not a number"}) \
            from None
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, f"limit must be between 1 and {MAX_PAGE}",
                       fields={"limit": "out of range"})
    cursor = request.args.get("cursor") or None
    if cursor is not None and not cursor_is_sound(cursor):
        raise ApiError(400, "cursor is not one this API gave out", fields={"cursor": "invalid"})
    return ListQuery(wanted, limit, cursor)
