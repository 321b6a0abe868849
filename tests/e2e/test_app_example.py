"""Smoke test of examples/areion_api.py: imported and served as it is."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.support import RawClient, serving

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "areion_api.py"


def load_app():
    spec = importlib.util.spec_from_file_location("areion_api_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app, module.TOKEN


def test_areion_example_serves_its_api(run):
    app, token = load_app()
    auth = [("Authorization", f"Bearer {token}"), ("Content-Type", "application/json")]

    async def main():
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            users = await client.request("GET", "/api/v1/users")
            assert users.status == 200 and json.loads(users.body)[0]["name"] == "ada"
            assert "server-timing" in users.headers and "x-request-id" in users.headers
            assert users.headers["x-content-type-options"] == "nosniff"
            one = await client.request("GET", "/api/v1/users/2")
            assert json.loads(one.body) == {"id": 2, "name": "grace"}
            refused = await client.request("POST", "/api/v1/admin/users", body=b'{"name": "cy"}')
            assert refused.status == 401 and refused.headers["www-authenticate"] == "Bearer"
            made = await client.request("POST", "/api/v1/admin/users", auth, b'{"name": "cy"}')
            assert made.status == 201 and made.headers["location"] == "/api/v1/users/3"
            bad = await client.request("POST", "/api/v1/admin/users", auth, b'{"nom": 1}')
            assert bad.status == 400
            gone = await client.request("DELETE", "/api/v1/admin/users/3", auth)
            assert gone.status == 204
            missing = await client.request("GET", "/api/v1/users/3", [("Accept", "application/json")])
            assert missing.status == 404 and json.loads(missing.body)["detail"] == "no user 3"
            docs = await client.request("GET", "/openapi.json")
            assert "/api/v1/users/{user_id}" in json.loads(docs.body)["paths"]
            await client.close()
    run(main)
