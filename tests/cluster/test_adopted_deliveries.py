"""A partition adopted with pushes still to be delivered: none is attempted before the callback
service has loaded the partition's records (an engine node in this process on a PostgreSQL
database, the platform its own process). The notification service takes a partition's deliveries
in before the callback service loads its records (it joins the membership first, so a resubmitted
callback's new notifications come after its old ones); an attempt made then, whose outcome changes
its callback's record, found no record to change."""

from __future__ import annotations

import asyncio

from engine.callbacks.bus import AttemptFailed
from engine.ids import partition_of
from engine.push.fcm import PushFailure
from tests.cluster.test_domains_partitions import cluster, platform, platform_config
from tests.cluster.test_dropped_notifications import adopted_again, lose_partition
from tests.push.test_rules import device
from tests.support.eventually import eventually

__all__ = ["cluster", "platform", "platform_config"]


async def test_a_push_of_an_adopted_partition_waits_for_its_callback(cluster, monkeypatch) -> None:
    a = await cluster.start("a")

    async def fcm_down(message: dict) -> None:
        raise PushFailure("HTTP 503", retry=True)

    monkeypatch.setattr(a.fcm, "send", fcm_down)
    record = await a.callbacks.create("hold", {"_customer_number": "+15550620001", "_device_os": "fcm",
                                               "_device_notification_id": device(2)})
    cid = record["_id"]
    a.bus.publish(AttemptFailed(a.callbacks.records[cid], 1, 3))  # a push, pending: FCM is down
    await a.manager.commit()
    sent: list[str] = []

    async def token_gone(message: dict) -> None:
        sent.append(message["data"]["event"])
        raise PushFailure("HTTP 404 UNREGISTERED", retry=False, drop_token=True)

    monkeypatch.setattr(a.fcm, "send", token_gone)
    load_records = a.callbacks.adopt

    async def slow_adopt(partitions: dict[int, int]) -> None:  # reading the records takes a while
        if partition_of(cid) in partitions:
            for _ in range(40):
                if sent:
                    break
                await asyncio.sleep(0.025)
        await load_records(partitions)

    monkeypatch.setattr(a.callbacks, "adopt", slow_adopt)
    await lose_partition(a, partition_of(cid))  # claimed again on a coming tick, its push taken in
    await adopted_again(a, record)
    await eventually(lambda: sent, timeout=10, expected="the taken-in push attempted")
    adopted = a.callbacks.records[cid]
    await eventually(lambda: "_device_notification_id" not in adopted, timeout=5,
                     expected="the dead token dropped from its record")
    assert adopted["_device_token_dropped"] == "true"
