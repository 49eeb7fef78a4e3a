"""Issue 12 item 3: /metrics, scraped from a real engine, moves with real traffic: callbacks created
and completed, open callbacks by state, deliveries to a real loopback receiver (delivered, retried,
dead), FCM pushes to a local fake, storage commits, EWT per queue, HTTP requests by route; only a
key that may read it gets it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from engine.api.appkeys import RUNTIME
from tests.callbacks.conftest import ADMIN, CLIENT, create, wait_state
from tests.push.test_rules import SIMULATOR as PUSH_SIMULATOR
from tests.push.test_rules import device
from tests.support.eventually import eventually
from tests.support.fake_google import fcm_error
from tests.support.receiver import Receiver

P = "callback_engine_"


def notified(receiver: Receiver, **extra) -> dict:
    return {"_service": "callback", "_enable_status_notification": "subscribe_notify",
            "_status_notification_type": "httpcb", "_status_notification_target": receiver.url(), **extra}


async def scrape(client, headers: dict[str, str] = ADMIN) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics as (name, labels) -> value."""
    r = await client.get("/metrics", headers=headers)
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(await r.text()):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((P + name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == P + name and want <= got)


async def test_metrics_move_with_callbacks_deliveries_and_requests(make_engine, receiver) -> None:
    failing = await Receiver(default_status=500).start()
    try:
        client = await make_engine({
            "notified": notified(receiver),
            "failing": notified(failing, _max_notify_delivery_attempts=2),
            "stuck": {"_service": "callback", "_urs_virtual_queue": "Empty_VQ"},
        })
        before = await scrape(client)
        assert value(before, "callbacks_created_total", service="notified") == 0
        assert value(before, "ewt_seconds", queue="Empty_VQ") == -1  # no agent staffed: unknown
        assert (P + "ewt_seconds", frozenset({("queue", "Callback_VQ")})) in before

        done = [await create(client, "notified", _customer_number=f"+1555080000{i}") for i in range(2)]
        doomed = await create(client, "failing", _customer_number="+15550800009")
        stuck = await create(client, "stuck", _customer_number="+15550800008")
        for cid in (*done, doomed):
            await wait_state(client, cid, "COMPLETED")
        await wait_state(client, stuck, "QUEUED")
        await receiver.wait_for(2 * 15)

        async def deliveries() -> dict:
            return await scrape(client)

        after = await eventually(deliveries, lambda s: value(s, "deliveries_total", type="httpcb",
                                                               result="delivered") >= 30
                                 and value(s, "deliveries_total", type="httpcb", result="dead") >= 1,
                                 timeout=15, expected="deliveries counted as delivered and dead")
        # The waiting ECMAScript session lets its context go (as the idle sweep would): hibernated.
        client.app[RUNTIME].registry.datamodel("ecmascript").pool.drop_all()
        idle = await scrape(client)
        assert 1 <= value(idle, "sessions_hibernated") <= value(idle, "sessions_live")
    finally:
        await failing.stop()

    assert value(after, "callbacks_created_total", service="notified") == 2
    assert value(after, "callbacks_created_total", service="stuck") == 1
    assert value(after, "callbacks_completed_total", service="notified", reason="AGENT_CONNECTED") == 2
    assert value(after, "callbacks_open", service="stuck", state="QUEUED") == 1
    assert total(after, "callbacks_open", service="notified") == 0
    assert value(after, "sessions_live") >= 1  # the stuck callback's flow waits for an agent
    # each flow's processing bursts were timed: three callbacks, each started and answered at least once
    assert total(after, "macrostep_duration_seconds_count") >= total(before, "macrostep_duration_seconds_count") + 6
    assert total(after, "macrostep_duration_seconds_sum") > 0
    # Every delivery of the failing target was tried twice: once retried, then dead and kept.
    assert value(after, "deliveries_total", type="httpcb", result="retried") >= 1
    assert value(after, "dead_letters") >= 1
    assert len(failing.received) == 0
    # Storage: commits happened, and their sizes and durations were observed as often.
    commits = value(after, "storage_commits_total")
    assert commits > 0
    assert value(after, "storage_batch_rows_count") > 0
    assert value(after, "storage_commit_duration_seconds_count") == value(after, "storage_batch_rows_count")
    assert value(after, "storage_persistent") == 1 and value(after, "storage_writer_alive") == 1
    # HTTP: by route pattern (never the path with its id), method and status, with durations.
    route = "/genesys/1/service/callback/{service}"
    assert value(after, "http_requests_total", method="POST", route=route, status="200") == 4
    assert value(after, "http_request_duration_seconds_count", method="POST", route=route) == 4
    assert value(after, "http_request_duration_seconds_bucket", method="POST", route=route, le="+Inf") == 4
    assert not [labels for (name, labels) in after if dict(labels).get("route", "").find(done[0]) >= 0]
    assert after[("process_resident_memory_bytes", frozenset())] > 0  # the process' own, unprefixed


async def test_metrics_need_a_key_that_may_read_them(make_engine) -> None:
    client = await make_engine({})
    r = await client.get("/metrics")
    assert r.status == 401
    r = await client.get("/metrics", headers=CLIENT)
    assert r.status == 403 and "monitor" in (await r.json())["message"]
    r = await client.post("/admin/keys", json={"name": "prometheus", "role": "monitor"}, headers=ADMIN)
    assert r.status == 201, await r.text()
    monitor = {"x-api-key": (await r.json())["key"]}
    samples = await scrape(client, monitor)
    assert value(samples, "http_requests_total", method="GET", route="/metrics", status="401") == 1
    assert value(samples, "http_requests_total", method="GET", route="/metrics", status="403") == 1
    r = await client.post("/metrics", headers=monitor)
    assert r.status in (403, 405)


async def test_pushes_are_counted_by_event_and_result(push_engine, google) -> None:
    client = await push_engine({"dialling": {"_service": "callback", "_dial_retry_timeout": 30,
                                             "_max_dial_attempts": 2}}, None, PUSH_SIMULATOR)
    google.by_device[device(2)] = (404, fcm_error(404, "UNREGISTERED", "NOT_FOUND"))  # final: dead at once
    kept = await create(client, "dialling", _customer_number="+15550020001", _device_os="fcm",
                        _device_notification_id=device(1))
    dropped = await create(client, "dialling", _customer_number="+15550020002", _device_os="fcm",
                           _device_notification_id=device(2))
    for cid in (kept, dropped):
        await wait_state(client, cid, "COMPLETED", timeout=30)
    await eventually(lambda: google.events(device(1)), lambda got: len(got) >= 2, timeout=10,
                     expected="two pushes to the first device")
    samples = await eventually(lambda: scrape(client), lambda s: total(s, "pushes_total", result="failed") >= 1,
                               timeout=10, expected="the failed push counted")
    assert value(samples, "pushes_total", event="CALLBACK_ATTEMPT_FAILED", result="sent") == 1
    assert value(samples, "pushes_total", event="CALLBACK_FINAL_ATTEMPT_FAILED", result="sent") == 1
    assert value(samples, "pushes_total", event="CALLBACK_ATTEMPT_FAILED", result="failed") == 1
    assert value(samples, "deliveries_total", type="fcm", result="delivered") == 2
    assert value(samples, "deliveries_total", type="fcm", result="dead") == 1
