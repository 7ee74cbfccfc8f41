"""``GET /api/v1/openapi.json``: the API's OpenAPI document (``refflow.ops.openapi``)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from refflow.ops.openapi import build_spec

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(build_spec())
