"""GET /api/v1/plugins: what is loaded (name, version, hooks, enabled)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from refflow.plugins.manager import get_plugin_manager, list_plugins

bp = Blueprint("plugins_api", __name__, url_prefix="/api/v1")


@bp.get("/plugins")
def plugins():
    pm = get_plugin_manager(current_app.extensions["refflow.settings"])
    return jsonify({"items": list_plugins(pm)})
