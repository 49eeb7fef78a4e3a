"""The database reads behind a cluster node's console views (engine/api/cluster_reads.py), on
PostgreSQL: what they return, in what order, and that each stays within its bound."""

from __future__ import annotations

from typing import Any

from engine import persistence
from engine.api.cluster_reads import call_in_page, call_in_total, waiting_counts, waiting_rows
from engine.callbacks.records import format_time
from engine.callbacks.rows import record_row
from engine.ids import partition_of, random_id

T0 = 1_800_000_000.0


def record(n: int, state: str, **fields: Any) -> dict[str, Any]:
    """The ``n``-th callback (created ``n`` seconds after ``T0``)."""
    return {"_id": random_id(), "_service_name": "svc", "_callback_state": state,
            "_customer_number": f"+1555090{n:04d}", "_desired_time": format_time(T0 + n),
            "_expiration_time": format_time(T0 + n + 3600), "_created_time": format_time(T0 + n),
            "_ors_session_id": f"s{n}", **fields}


async def stored(url: str, records: list[dict[str, Any]]):
    store = await persistence.open_store(url)
    async with store.engine.begin() as conn:
        for r in records:
            row = record_row(r)
            await conn.exec_driver_sql(
                "INSERT INTO callbacks (id, service, state, customer_number, desired_time, expiration_time, "
                "session_id, created_at, updated_at, record, part) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                "$11)", (row["id"], row["service"], row["state"], row["customer_number"], row["desired_time"],
                         row["expiration_time"], row["session_id"], row["created_at"], row["updated_at"],
                         row["record"], partition_of(row["id"])))
    return store


async def test_waiting_rows_are_the_queued_and_routing_ones_oldest_first_within_the_cap(postgres) -> None:
    made = [record(1, "QUEUED", _urs_virtual_queue="A", _submitted_time=format_time(T0 + 5)),
            record(2, "ROUTING", _urs_virtual_queue="B"),
            record(3, "QUEUED", _urs_virtual_queue="A"),
            record(4, "SCHEDULED", _urs_virtual_queue="A"),
            record(5, "PROCESSING", _urs_virtual_queue="A"),
            record(6, "COMPLETED", _urs_virtual_queue="A"),
            record(7, "QUEUED")]  # no queue (yet)
    store = await stored(postgres.new_database(), made)
    try:
        rows, more = await waiting_rows(store)
        assert not more
        assert [(r.id, r.queue, r.state) for r in rows] == [
            (made[0]["_id"], "A", "QUEUED"), (made[1]["_id"], "B", "ROUTING"), (made[2]["_id"], "A", "QUEUED"),
            (made[6]["_id"], None, "QUEUED")]
        first = rows[0]
        assert (first.service, first.number, first.session_id, first.submitted) == (
            "svc", "+15550900001", "s1", format_time(T0 + 5))
        assert rows[1].submitted is None

        rows, more = await waiting_rows(store, cap=2)  # the oldest two, and word that there are more
        assert more and [r.id for r in rows] == [made[0]["_id"], made[1]["_id"]]
        assert await waiting_counts(store) == {"A": 2, "B": 1}  # every stored one, per queue
    finally:
        await store.close()


async def test_call_in_rows_are_the_open_ones_carrying_a_code_newest_first(postgres) -> None:
    made = [record(1, "QUEUED", _access_code="111111"),
            record(2, "PROCESSING", _access_code=222222),
            record(3, "COMPLETED", _access_code="333333"),  # done: its code is no good
            record(4, "QUEUED", _access_code=""),  # no code
            record(5, "QUEUED", note='"_access_code":"x"'),  # the text only inside a value
            record(6, "QUEUED"),
            record(7, "ROUTING", _access_code="777777")]
    store = await stored(postgres.new_database(), made)
    try:
        assert await call_in_total(store) == 3
        assert await call_in_total(store, cap=2) == 2  # counts stop at the cap
        page = await call_in_page(store, 10, 0)
        assert [r["_id"] for r in page] == [made[6]["_id"], made[1]["_id"], made[0]["_id"]]
        assert page[1]["_access_code"] == 222222  # decoded as stored
        assert [r["_id"] for r in await call_in_page(store, 1, 1)] == [made[1]["_id"]]
        assert await call_in_page(store, 10, 3) == []
    finally:
        await store.close()
