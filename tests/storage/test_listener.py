"""A cluster node's LISTEN connection (issue 14): notifications reach every subscriber of their
channel (plain functions and coroutines alike, subscribed before or after the start); a connection
the server closes is replaced, and the subscribers' sweeps run once it is back, since what was
notified meanwhile is lost."""

from __future__ import annotations

import asyncio

import asyncpg

from engine.storage.listener import Listener
from tests.support.eventually import eventually


async def test_notifications_reach_subscribers_and_a_lost_connection_is_replaced(postgres) -> None:
    url = postgres.new_database()
    sender = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    listener = Listener(url, probe_seconds=0.5)
    plain: list[str] = []
    awaited: list[str] = []
    late: list[str] = []
    sweeps: list[int] = []

    async def coroutine(payload: str) -> None:
        await asyncio.sleep(0)
        awaited.append(payload)

    listener.subscribe("cbe_inbox", plain.append)
    listener.subscribe("cbe_inbox", coroutine)
    listener.on_reconnect(lambda: sweeps.append(listener.reconnects))
    try:
        await listener.start()
        listener.subscribe("cbe_config", late.append)
        await asyncio.sleep(0.1)  # the late LISTEN goes out on the live connection
        await sender.execute("SELECT pg_notify('cbe_inbox', '7'), pg_notify('cbe_config', 'x'), "
                             "pg_notify('cbe_other', 'no one')")
        await eventually(lambda: (plain, awaited, late), lambda got: got == (["7"], ["7"], ["x"]), timeout=2,
                         expected="each subscriber told once")
        # The server closes the listener's connection (a restart, an administrator, a network cut).
        await sender.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await eventually(lambda: sweeps, lambda got: got == [1], timeout=5, expected="a sweep after reconnecting")
        await sender.execute("SELECT pg_notify('cbe_inbox', '8'), pg_notify('cbe_config', 'y')")
        await eventually(lambda: (plain, awaited, late), lambda got: got == (["7", "8"], ["7", "8"], ["x", "y"]),
                         timeout=2, expected="notifications after the reconnection")
    finally:
        await listener.close()
        await sender.close()


async def test_channels_subscribed_together_after_the_start_are_all_listened_on(postgres, caplog) -> None:
    """Parts that subscribe after the start (a cluster's shared configuration, keys, sign-ins) do
    so in one go: their LISTENs ran at once on the one connection, which asyncpg refuses ("another
    operation is in progress"), so all but one channel were deaf until a reconnection."""
    url = postgres.new_database()
    sender = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    listener = Listener(url, probe_seconds=0.5)
    heard: dict[str, list[str]] = {f"cbe_late_{n}": [] for n in range(4)}
    try:
        await listener.start()
        for channel, payloads in heard.items():
            listener.subscribe(channel, payloads.append)
        await asyncio.sleep(1.2)  # the LISTENs and at least one probe go out on the connection
        await sender.execute("SELECT " + ", ".join(f"pg_notify('{c}', '{c}')" for c in heard))
        await eventually(lambda: heard, lambda got: all(p == [c] for c, p in got.items()), timeout=3,
                         expected="every late channel told once")
        assert listener.reconnects == 0
        assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    finally:
        await listener.close()
        await sender.close()
