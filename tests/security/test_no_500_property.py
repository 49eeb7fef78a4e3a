"""Issue 9 item 10: no input gets a 500, proven by a property-based test (hypothesis) over every
route of a live engine process: path parameters, query strings and bodies (JSON of any shape
with NaN/Infinity and huge numbers, forms, bytes, wrong content types), with each role's key.

The run is derandomized and bounded for CI (``HYPOTHESIS_PROFILE=deep`` explores far more).
Outbound traffic stays on loopback: the URL allow list names only a closed loopback port and
the FCM endpoints point there too.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.app import create_app
from engine.settings import Settings
from tests.support.engine_process import ADMIN_KEY, CLIENT_KEY, DEVELOPER_KEY, shipped_engine

settings.register_profile("ci", max_examples=800, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("deep", max_examples=20_000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

KNOWN_KEYS = ["_customer_number", "_desired_time", "_new_desired_time", "_callback_state", "_id", "_call_direction",
              "_urs_virtual_queue", "_device_os", "_device_notification_id", "_status_notification_target",
              "_enable_status_notification", "_max_dial_attempts", "_ttl", "src", "filter", "expire",
              "notificationDetails", "subscriberId", "providerName", "tag", "message", "event_id", "project_id",
              "private_key", "client_email", "app_id", "sender_id", "api_key", "device_token", "threshold_minutes",
              "agents", "queues", "time_scale", "number", "access_code", "weekly", "time_zone", "exceptions", "name",
              "role", "services", "text", "_scxmleventname", "levels", "greeting"]
KNOWN_QUERY = ["limit", "offset", "_id", "start", "end", "number-of-days", "max-time-slots", "format", "status",
               "flow", "parent", "persistent", "_callback_state", "_customer_number"]
KNOWN_IDS = ["callback", "callin", "office-callback", "Callback_VQ", "hello", "GMS_Events", "office", "admin", "x",
             "..", "%2e%2e", "0", "-1", "99999999999999999999"]

texts = st.text(max_size=40)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | texts | st.sampled_from(["", "2026-13-45T99:99:99Z",
           "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "+15551234567", "1e400", "http://127.0.0.1:1/",
           "http://user@127.0.0.1:1/", "file:///etc/passwd", "cb.cancel", "callback/callback/x"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(KNOWN_KEYS) | texts, inner, max_size=5), max_leaves=16)
bodies = st.one_of(
    st.tuples(st.just("application/json"),
              st.dictionaries(st.sampled_from(KNOWN_KEYS) | texts, json_values, max_size=6).map(json.dumps)),
    st.tuples(st.just("application/json"), json_values.map(json.dumps)),
    st.tuples(st.sampled_from(["application/json", "text/plain", "application/octet-stream", "",
                               "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]),
              st.binary(max_size=200).map(lambda b: b.decode("latin-1"))),
    st.tuples(st.just("application/x-www-form-urlencoded"),
              st.dictionaries(st.sampled_from(KNOWN_KEYS) | texts, texts, max_size=6).map(urlencode)),
    st.just((None, None)),
)
path_values = st.sampled_from(KNOWN_IDS) | texts
queries = st.dictionaries(st.sampled_from(KNOWN_QUERY) | texts, texts | st.sampled_from(KNOWN_IDS), max_size=4)
keys = st.sampled_from([ADMIN_KEY, ADMIN_KEY, CLIENT_KEY, DEVELOPER_KEY, "wrong-key", None])


def engine_routes() -> list[tuple[str, str]]:
    """Every (method, path template) the engine serves, read from the application itself."""
    with tempfile.TemporaryDirectory() as data:
        app = create_app(Settings.load(env={}, data_dir=Path(data), admin_key="a", client_key="c",
                                       developer_key="d"))
    found = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}
    found.add(("POST", "/basichttp/{sid}"))  # added once the engine has started
    return sorted(found)


ROUTES = engine_routes()


def fill(template: str, values: list[str]) -> str:
    parts, out, i = template.split("/"), [], 0
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            out.append(quote(values[i % len(values)], safe=""))
            i += 1
        else:
            out.append(part)
    return "/".join(out)


@pytest.fixture(scope="module")
def live_engine(tmp_path_factory):
    engine = shipped_engine(tmp_path_factory.mktemp("fuzz"))
    asyncio.run(engine.start())
    yield engine
    engine.stop()


def test_no_input_gets_a_500(live_engine):
    seen: dict[int, int] = {}
    http = requests.Session()

    @settings(settings.get_profile(PROFILE))
    @given(route=st.sampled_from(ROUTES), values=st.lists(path_values, min_size=1, max_size=3), query=queries,
           body=bodies, key=keys)
    def check(route, values, query, body, key):
        method, template = route
        url = live_engine.url + fill(template, values)
        ctype, data = body
        headers = {"Content-Type": ctype} if ctype is not None else {}
        if key is not None:
            headers["x-api-key"] = key
        r = http.request(method, url, params=query, data=data.encode("utf-8", "surrogatepass") if data else None,
                         headers=headers, timeout=30, allow_redirects=False)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500 or r.status_code == 503, (method, url, query, body, r.status_code, r.text[:500])
        if r.status_code >= 400 and not template.startswith("/basichttp"):
            answer = r.json()
            assert answer.get("message"), answer

    check()
    print("statuses seen:", dict(sorted(seen.items())))
    assert live_engine.proc.poll() is None, live_engine.log()
    assert "unhandled error" not in live_engine.log_path.read_text(), live_engine.log()  # all of it: log() is its tail
