"""Ids in URLs: every route variable named ``*_id`` (``<referral_id>``,
``<delivery_id>``, ...) matches a refflow id and nothing else.

refflow's ids are UUIDs in their canonical text form (``refflow.db.models.new_id``:
36 characters, lower-case hex and hyphens). A path whose id is not one (a NUL,
a quote, 300 characters, upper case) matches no route, so it is a 404 (in the
JSON envelope on the API, the 404 page on web pages) before any view runs and
before anything reaches the database.

The app factory registers ``IdConverter`` as the ``id`` converter and makes
``IdRule`` its rule class, which gives a ``*_id`` variable written without a
converter the ``id`` one. So a route keeps its plain rule,
``/api/v1/referrals/<referral_id>``, which is what the metrics labels and the
OpenAPI document show. A ``*_id`` that is not a refflow id says so with a
converter of its own (``<int:job_id>``, ``<string:job_id>``).
"""

from __future__ import annotations

import re

from werkzeug.routing import BaseConverter, Rule

ID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ID = re.compile(ID_PATTERN)


def is_id(value: object) -> bool:
    """Whether ``value`` is an id refflow could have made."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


class IdConverter(BaseConverter):
    """``<id:name>``: a refflow id (a canonical UUID)."""

    regex = ID_PATTERN


class IdRule(Rule):
    """A rule whose ``*_id`` variables without a converter use ``IdConverter``."""

    def get_converter(self, variable_name, converter_name, args, kwargs) -> BaseConverter:
        if converter_name == "default" and not args and not kwargs \
                and variable_name.endswith("_id"):
            converter_name = "id"
        return super().get_converter(variable_name, converter_name, args, kwargs)


CONVERTERS = {"id": IdConverter}
