"""``GET /metrics`` behind ``REFFLOW_METRICS_TOKEN``: refused without the
token (or with another), served with it; open when no token is set."""

from __future__ import annotations

from refflow.app import create_app

TOKEN = "scrape-7f3c9e1d2b"


def test_metrics_need_the_bearer_token_when_one_is_set(settings):
    client = create_app(settings.with_overrides(metrics_token=TOKEN),
                        {"TESTING": True}).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert refused.get_json()["error"]["code"] == "unauthorized"
        assert "refflow_" not in refused.get_data(as_text=True)
    served = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert served.status_code == 200
    assert "refflow_database_up 1.0" in served.get_data(as_text=True)


def test_metrics_are_open_without_a_token(client):
    assert client.get("/metrics").status_code == 200
