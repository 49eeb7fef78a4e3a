"""Issue 13: the console's callback list (GET /admin/callbacks): every filter, the search (LIKE
wildcards are text), paging with a total, both orders, and a 400 naming each bad parameter; with
the store and without it (persistence off: the same filters over the records in memory)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.api.appkeys import RUNTIME
from engine.callbacks.records import format_time
from tests.api.console_support import ADMIN, BASE, CLIENT, create, make_engine
from tests.support.eventually import eventually

LIST = "/admin/callbacks"


async def listed(client, query: str = "", headers: dict[str, str] = ADMIN) -> dict:
    r = await client.get(f"{LIST}?{query}", headers=headers)
    body = await r.json()
    assert r.status == 200, body
    return body


def ids(body: dict) -> list[str]:
    return [r["_id"] for r in body["callbacks"]]


@pytest.fixture(params=[True, False], ids=["stored", "in-memory"])
async def engine(request, aiohttp_client, tmp_path):
    return await make_engine(aiohttp_client, tmp_path, persistence=request.param)


async def test_filters_search_paging_and_order(engine) -> None:
    client = engine
    later = format_time(client.app[RUNTIME].clock.now() + 3 * 86400)
    made = [
        await create(client, "callback", _customer_number="+15550900001", note="first"),  # answered
        await create(client, "waiting", _customer_number="+15550900002", note="50%_off"),
        await create(client, "waiting", _customer_number="+15550900003", note="50xx off"),
        await create(client, "callback", _customer_number="+15550900004", _desired_time=later),  # SCHEDULED
        await create(client, "waiting", _customer_number="+15550900002", note="cancel me"),
    ]
    every = [m["_id"] for m in made]
    r = await client.delete(f"{BASE}/waiting/{every[4]}", headers=CLIENT)
    assert r.status == 200, await r.text()

    async def states() -> dict[str, str]:
        return {r["_id"]: r["_callback_state"] for r in (await listed(client))["callbacks"]}
    await eventually(states, lambda s: s.get(every[0]) == "COMPLETED" and s.get(every[4]) == "COMPLETED",
                     timeout=15, expected="the answered and the cancelled callbacks COMPLETED")

    everything = await listed(client)
    assert ids(everything) == every[::-1]  # newest first
    assert everything["total"] == 5 and everything["total_exact"] is True
    assert (everything["limit"], everything["offset"]) == (50, 0)
    assert ids(await listed(client, "order=oldest")) == every
    page = await listed(client, "limit=2&offset=1")
    assert ids(page) == every[::-1][1:3] and page["total"] == 5

    assert ids(await listed(client, "service=waiting")) == [every[4], every[2], every[1]]
    assert ids(await listed(client, "service=nosuch")) == []
    assert ids(await listed(client, "state=QUEUED,SCHEDULED")) == [every[3], every[2], every[1]]
    assert ids(await listed(client, "state=QUEUED&state=SCHEDULED")) == [every[3], every[2], every[1]]
    assert ids(await listed(client, "state=COMPLETED&service=waiting")) == [every[4]]
    assert ids(await listed(client, "reason=CANCELLED")) == [every[4]]
    assert ids(await listed(client, "reason=AGENT_CONNECTED")) == [every[0]]
    assert ids(await listed(client, "reason=CANCELLED&state=QUEUED")) == []  # a reason is only COMPLETED's
    assert ids(await listed(client, "number=%2B15550900002")) == [every[4], every[1]]
    assert ids(await listed(client, "number=%2B15550900002&state=QUEUED")) == [every[1]]

    # the search: the record's values, the id, the number; % and _ are plain characters
    found = await listed(client, "q=50%25_off")
    assert ids(found) == [every[1]] and found["total"] == 1
    assert ids(await listed(client, "q=50%25_OFF")) == [every[1]]  # case-insensitive
    assert ids(await listed(client, "q=off")) == [every[2], every[1]]
    assert ids(await listed(client, f"q={every[3][4:20]}")) == [every[3]]
    assert ids(await listed(client, "q=0900004")) == [every[3]]
    assert ids(await listed(client, "q=cancel&state=COMPLETED")) == [every[4]]
    assert ids(await listed(client, "q=%25")) == [every[1]]

    # the creation time range: from inclusive, to exclusive
    created = {r["_id"]: r["_created_time"] for r in everything["callbacks"]}
    between = await listed(client, f"from={created[every[1]]}&to={created[every[3]]}")
    assert ids(between) == [every[2], every[1]]
    offset = datetime.fromisoformat(created[every[2]].replace("Z", "+00:00")).astimezone(UTC)
    assert ids(await listed(client, "from=" + offset.strftime("%Y-%m-%dT%H:%M:%S.%f") + "&order=oldest")) == \
        every[2:]  # no offset: UTC

    # a record is shown as the GMS API shows it
    [one] = (await listed(client, f"q={every[1]}"))["callbacks"]
    r = await client.get(f"{BASE}?_id={every[1]}", headers=CLIENT)
    assert one == (await r.json())[0]


@pytest.mark.parametrize(("query", "named"), [
    ("state=NOPE", "state"), ("state=QUEUED,nope", "state"), ("reason=LATE", "reason"),
    ("from=yesterday", "from"), ("to=2026-13-01T00:00:00Z", "to"), ("from=0001-01-01T00:00:00Z", "from"),
    ("from=2026-05-02T00:00:00Z&to=2026-05-01T00:00:00Z", "to"), ("limit=0", "limit"), ("limit=501", "limit"),
    ("limit=x", "limit"), ("offset=-1", "offset"), ("offset=100001", "offset"), ("order=random", "order"),
    ("q=" + "x" * 101, "q"), ("q=a%00b", "q"), ("service=a%0Ab", "service"), ("number=" + "1" * 201, "number"),
])
async def test_a_bad_parameter_is_a_400_naming_it(engine, query, named) -> None:
    r = await engine.get(f"{LIST}?{query}", headers=ADMIN)
    body = await r.json()
    assert r.status == 400, body
    assert f"'{named}'" in body["message"], body
