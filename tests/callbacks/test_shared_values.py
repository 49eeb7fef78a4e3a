"""Values many live records hold are one object each, not a copy per record: a millisecond's
time stamp, the service's name and the client's key names (issue 15: memory per callback)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from engine.app import RUNTIME
from engine.callbacks.records import BadRequest, format_time, parse_time, request_keys
from tests.callbacks.conftest import BASE, CLIENT, make_client


def test_one_millisecond_is_one_string_and_its_text_is_right() -> None:
    epoch = 1_780_000_000.1234
    first = format_time(epoch)
    assert format_time(epoch + 0.0004) is first  # the same millisecond
    assert first == datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    later = format_time(epoch + 0.001)
    assert later != first and later.endswith(".124Z")
    for step in range(1000):  # many other stamps since: still right, whatever the cache dropped
        t = 1_700_000_000 + step * 7.0011
        assert format_time(t) == datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_the_clients_key_names_are_interned() -> None:
    body = json.loads('{"order": "A-1", "customer_tier": "gold"}')
    other = json.loads('{"order": "A-2", "customer_tier": "silver"}')
    first, second = request_keys(body, {}, allow_empty=False), request_keys(other, {}, allow_empty=False)
    assert [k1 is k2 for k1, k2 in zip(first, second, strict=True)] == [True, True]


async def test_records_of_a_service_share_its_name_and_their_time_stamps(aiohttp_client, tmp_path) -> None:
    client = await make_client(aiohttp_client, tmp_path)
    service = client.app[RUNTIME].callbacks
    ids = []
    for n in range(3):
        r = await client.post(f"{BASE}/callback", json={"_customer_number": f"+1555900{n:04d}"}, headers=CLIENT)
        assert r.status == 200
        ids.append((await r.json())["_id"])
    records = [service.records[cid] for cid in ids]
    assert records[0]["_service_name"] is records[1]["_service_name"] is records[2]["_service_name"]
    for record in records:
        assert record["_created_time"] is record["_desired_time"]  # created now: one stamp


def test_parsed_times_are_right_and_bad_ones_still_refused() -> None:
    text = "2026-05-01T14:30:00.250Z"
    assert parse_time(text, "t") == parse_time(text, "t") == 1777645800.25
    assert parse_time("2026-05-01T16:30:00.250+02:00", "t") == 1777645800.25
    for i in range(3000):  # more than the cache keeps: every answer still right
        stamp = format_time(1_700_000_000 + i * 61.5)
        assert parse_time(stamp, "t") == 1_700_000_000 + i * 61.5
    for bad in ("", "tomorrow", 12, None, "9999-01-01T00:00:00Z"):
        with pytest.raises(BadRequest):
            parse_time(bad, "t")
        with pytest.raises(BadRequest):
            parse_time(bad, "t")  # refused again, not remembered
