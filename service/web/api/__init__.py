"""The JSON API (/api/v1): referrals, staff actions, plugins, the OpenAPI document."""
