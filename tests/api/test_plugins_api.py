"""GET /api/v1/plugins lists what is loaded, built-ins included."""


def test_plugins_endpoint_lists_the_builtin_channels_and_rules(client, auth):
    r = client.get("/api/v1/plugins", headers=auth)
    assert r.status_code == 200
    items = {p["name"]: p for p in r.get_json()["items"]}
    for name in ("channel_pdf", "channel_email", "channel_fax", "clinical_rules"):
        assert items[name]["enabled"] is True
        assert items[name]["version"]
    assert "refflow_output_channels" in items["channel_email"]["hooks"]
    assert "refflow_validate_referral" in items["clinical_rules"]["hooks"]
