"""URL converters: ``<id:referral_id>`` matches a refflow id and nothing else.

refflow's ids are UUIDs in their canonical text form (``refflow.db.models.new_id``:
36 characters, lower-case hex and hyphens). A path whose id is not one (a NUL,
a quote, 300 characters, upper case) matches no route, so it is a 404 (in the
JSON envelope on the API, the 404 page on web pages) before any view runs
and before anything reaches the database.
"""

from __future__ import annotations

import re

from werkzeug.routing import BaseConverter

ID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ID = re.compile(ID_PATTERN)


def is_id(value: object) -> bool:
    """Whether ``value`` is an id refflow could have made."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


class IdConverter(BaseConverter):
    """``<id:name>``: a refflow id (a canonical UUID)."""

    regex = ID_PATTERN


CONVERTERS = {"id": IdConverter}
