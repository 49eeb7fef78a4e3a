"""``POST /admin/config/reload`` on a single engine: the configuration files are read again, and
the answer names what changed; a file that does not validate changes nothing."""

from __future__ import annotations

import json

from tests.api.conftest import ADMIN


async def test_the_files_are_read_again_and_what_changed_is_named(engine_client, tmp_path) -> None:
    client = await engine_client()
    services = tmp_path / "config" / "services"
    services.mkdir(parents=True, exist_ok=True)
    (services / "late.json").write_text(json.dumps({"_ttl": 600}))
    (services / "broken.json").write_text("{not json")
    answer = await client.post("/admin/config/reload", headers=ADMIN)
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["changed"] == ["service late"]
    found = await (await client.get("/admin/services/late", headers=ADMIN)).json()
    assert found["effective"]["_ttl"] == 600
    assert (await client.get("/admin/services/broken", headers=ADMIN)).status == 404

    answer = await client.post("/admin/config/reload", headers=ADMIN)
    assert (await answer.json())["changed"] == []  # nothing changed since
    client_key = {"Authorization": "Bearer client-key"}
    assert (await client.post("/admin/config/reload", headers=client_key)).status == 403
