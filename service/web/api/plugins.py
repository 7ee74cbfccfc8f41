"""GET /api/v1/plugins: what is loaded (name, version, hooks, enabled), and the
fax transports with what each supports."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from refflow.plugins.manager import describe_fax_transports, get_plugin_manager, list_plugins

bp = Blueprint("plugins_api", __name__, url_prefix="/api/v1")


@bp.get("/plugins")
def plugins():
    settings = current_app.extensions["refflow.settings"]
    pm = get_plugin_manager(settings)
    return jsonify({"items": list_plugins(pm),
                    "fax_transports": describe_fax_transports(pm, settings)})
