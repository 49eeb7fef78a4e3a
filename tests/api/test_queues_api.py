"""Issue 13: the console's live views, from memory: the virtual queues with their figures and the
callbacks waiting in each, by position (GET /admin/queues), and the click-to-call-in records
(GET /admin/call-ins), each following the callbacks as they come and go."""

from __future__ import annotations

from engine.api.appkeys import RUNTIME
from tests.api.console_support import ADMIN, BASE, CLIENT, create, make_engine
from tests.support.eventually import eventually


async def queues(client, query: str = "") -> dict[str, dict]:
    r = await client.get(f"/admin/queues?{query}", headers=ADMIN)
    body = await r.json()
    assert r.status == 200, body
    assert body["now"].endswith("Z")
    return {q["name"]: q for q in body["queues"]}


async def test_queues_show_figures_and_the_callbacks_waiting_by_position(aiohttp_client, tmp_path) -> None:
    client = await make_engine(aiohttp_client, tmp_path)
    first = await create(client, "waiting", _customer_number="+15550900011")
    second = await create(client, "waiting", _customer_number="+15550900012")
    found = await eventually(lambda: queues(client), lambda qs: qs["Empty_VQ"]["waiting"] == 2, timeout=5,
                             expected="two interactions waiting in Empty_VQ")
    empty, staffed = found["Empty_VQ"], found["Callback_VQ"]
    assert (empty["agents_staffed"], empty["agents_busy"], empty["agents_ready"], empty["ewt_seconds"]) == (0, 0, 0, -1)
    assert staffed["agents_staffed"] == 2 and staffed["agents_ready"] == 2 and staffed["callbacks_waiting"] == []
    assert empty["callbacks_in_queue"] == 2
    assert [(w["id"], w["position"], w["service"], w["number"], w["state"]) for w in empty["callbacks_waiting"]] == [
        (first["_id"], 1, "waiting", "+15550900011", "QUEUED"), (second["_id"], 2, "waiting", "+15550900012", "QUEUED")]
    assert all(w["since"].endswith("Z") for w in empty["callbacks_waiting"])
    stats = client.app[RUNTIME].simulator.queue_stats("Empty_VQ")  # the platform's own figures
    assert empty["waiting"] == stats.waiting and empty["ewt_seconds"] == stats.ewt_seconds

    one = (await queues(client, "limit=1"))["Empty_VQ"]
    assert [w["id"] for w in one["callbacks_waiting"]] == [first["_id"]] and one["callbacks_in_queue"] == 2

    assert (await client.delete(f"{BASE}/waiting/{first['_id']}", headers=CLIENT)).status == 200
    after = await eventually(lambda: queues(client), lambda qs: qs["Empty_VQ"]["callbacks_in_queue"] == 1,
                             timeout=5, expected="the cancelled callback gone from the queue")
    assert [(w["id"], w["position"]) for w in after["Empty_VQ"]["callbacks_waiting"]] == [(second["_id"], 1)]
    for bad in ("limit=-1", "limit=501", "limit=many"):
        r = await client.get(f"/admin/queues?{bad}", headers=ADMIN)
        assert r.status == 400 and "'limit'" in (await r.json())["message"]


async def call_ins(client, query: str = "") -> dict:
    r = await client.get(f"/admin/call-ins?{query}", headers=ADMIN)
    body = await r.json()
    assert r.status == 200, body
    return body


async def test_call_ins_list_open_callbacks_with_an_access_code(aiohttp_client, tmp_path) -> None:
    client = await make_engine(aiohttp_client, tmp_path)
    assert (await call_ins(client)) == {"call_ins": [], "total": 0, "limit": 100, "offset": 0}
    await create(client, "waiting", _customer_number="+15550900020")  # no code: never listed
    made = [await create(client, "callin", _customer_number=f"+1555090002{i}") for i in (1, 2)]
    listed = await eventually(lambda: call_ins(client), lambda body: body["total"] == 2, timeout=8,
                              expected="both call-in callbacks with a code")
    assert [c["id"] for c in listed["call_ins"]] == [made[1]["_id"], made[0]["_id"]]  # latest code first
    r = await client.get(f"{BASE}?_id={made[0]['_id']}", headers=CLIENT)
    [record] = await r.json()
    shown = listed["call_ins"][1]
    assert shown == {"id": record["_id"], "service": "callin", "number": "+15550900021",
                     "access_number": str(record["_access_number"]), "access_code": str(record["_access_code"]),
                     "expires": record["_access_expires"], "state": record["_callback_state"]}
    assert shown["expires"].endswith("Z")
    page = await call_ins(client, "limit=1&offset=1")
    assert [c["id"] for c in page["call_ins"]] == [made[0]["_id"]] and page["total"] == 2

    assert (await client.delete(f"{BASE}/callin/{made[1]['_id']}", headers=CLIENT)).status == 200
    left = await eventually(lambda: call_ins(client), lambda body: body["total"] == 1, timeout=5,
                            expected="the cancelled call-in gone")
    assert [c["id"] for c in left["call_ins"]] == [made[0]["_id"]]
    r = await client.get("/admin/call-ins?offset=-1", headers=ADMIN)
    assert r.status == 400
