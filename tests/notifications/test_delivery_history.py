"""Each delivery attempt of a status notification lands in its callback's history: time, result,
HTTP status or error; dead letters are still listed and replayed as before."""

from __future__ import annotations

from sqlalchemy import select

from engine.api.appkeys import RUNTIME
from engine.callbacks import history
from tests.callbacks.conftest import ADMIN, create
from tests.support.eventually import eventually

ONE_EVENT = {"one": "[_cbe_on_service_create]\nnotify_params=_customer_number\n"}


def svc(receiver, **extra) -> dict:
    return {"_service": "callback", "_enable_status_notification": "subscribe_notify",
            "_status_notification_type": "httpcb", "_callback_events_list": "one",
            "_status_notification_target": receiver.url() + "?key=hush", **extra}


async def deliveries(client, cid: str) -> list[dict]:
    r = await client.get(f"/admin/callbacks/{cid}/history", headers=ADMIN)
    body = await r.json()
    assert r.status == 200, body
    assert "hush" not in await r.text()  # a key in the target's query never shows
    return body["deliveries"]


async def test_a_delivery_that_fails_once_then_arrives_shows_both_attempts(make_engine, receiver) -> None:
    receiver.answers = [(500, {})]
    client = await make_engine({"flaky": svc(receiver)}, lists=ONE_EVENT)
    cid = await create(client, "flaky", _customer_number="+15550800101")
    await receiver.wait_for(1, timeout=20)
    [delivery] = await eventually(lambda: deliveries(client, cid),
                                  lambda got: len(got) == 1 and got[0]["status"] == "delivered", timeout=10,
                                  expected="the delivery delivered in the history")
    assert delivery["event"] == "_cbe_on_service_create" and delivery["type"] == "httpcb"
    assert delivery["target"] == receiver.url()  # without its query
    first, second = delivery["attempts"]
    assert (first["result"], first["status"], first["error"]) == ("retry", 500, "HTTP 500")
    assert (second["result"], second["status"], second["error"]) == ("delivered", 200, "")
    assert first["at"] <= second["at"]


async def test_a_dead_letter_is_listed_replayed_and_its_history_goes_on(make_engine, receiver) -> None:
    receiver.default_status = 503
    client = await make_engine({"doomed": svc(receiver, _max_notify_delivery_attempts=2)}, lists=ONE_EVENT)
    cid = await create(client, "doomed", _customer_number="+15550800102")

    async def dead_letters() -> list[dict]:
        return (await (await client.get("/admin/dead-letters", headers=ADMIN)).json())["dead_letters"]

    [letter] = await eventually(dead_letters, timeout=10, expected="a dead letter")
    [delivery] = await deliveries(client, cid)
    assert delivery["id"] == letter["id"] and delivery["status"] == "dead"
    assert [(a["result"], a["status"]) for a in delivery["attempts"]] == [("retry", 503), ("dead", 503)]
    receiver.default_status = 200
    r = await client.post(f"/admin/dead-letters/{letter['id']}/replay", headers=ADMIN)
    assert r.status == 200
    await receiver.wait_for(1)
    [delivery] = await eventually(lambda: deliveries(client, cid), lambda got: got[0]["status"] == "delivered",
                                  timeout=10, expected="the replayed delivery delivered")
    assert [a["result"] for a in delivery["attempts"]] == ["retry", "dead", "delivered"]
    assert await dead_letters() == []


async def test_a_delivery_waiting_for_its_retry_shows_as_pending(make_engine, receiver) -> None:
    receiver.default_status = 500
    client = await make_engine({"waiting": svc(receiver, _max_notify_delivery_attempts=50)}, lists=ONE_EVENT)
    cid = await create(client, "waiting", _customer_number="+15550800103")
    [delivery] = await eventually(lambda: deliveries(client, cid), lambda got: len(got) == 1 and got[0]["attempts"],
                                  timeout=10, expected="a failed attempt")
    assert delivery["status"] == "pending" and delivery["attempts"][0]["result"] == "retry"


async def test_attempt_rows_are_keyed_by_their_callback_s_serial(make_engine, receiver) -> None:
    """The attempts' history rows carry their callback's serial, as its state changes do: keyed
    by the random callback id alone, each dirtied a random index page (migration 9)."""
    client = await make_engine({"keyed": svc(receiver)}, lists=ONE_EVENT)
    runtime = client.app[RUNTIME]
    cid = await create(client, "keyed", _customer_number="+15550800103")
    await receiver.wait_for(1, timeout=20)
    await eventually(lambda: deliveries(client, cid), lambda got: len(got) == 1 and got[0]["status"] == "delivered",
                     timeout=10, expected="the delivery delivered in the history")
    await eventually(lambda: runtime.notifications.dispatcher.history.unwritten(cid), lambda got: not got,
                     timeout=10, expected="the attempt's row stored")
    t = history.callback_history
    rows = await runtime.store.fetch_all(select(t.c.kind, t.c.callback_serial).where(t.c.callback_id == cid))
    serial = runtime.callbacks.serials.of(cid)
    assert serial is not None and {r["kind"] for r in rows} >= {history.STATE, history.DELIVERY}, rows
    assert all(r["callback_serial"] == serial for r in rows), rows
