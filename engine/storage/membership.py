"""A node's membership of a cluster on PostgreSQL (issue 14): its lease, and the partitions it holds.

A node registers (a ``cluster_nodes`` row under its name, with a new incarnation and an id slot),
keeps its lease alive with one heartbeat ``UPDATE`` every ``heartbeat`` seconds, and claims
partitions that nobody holds or whose holder's lease ran out (``FOR UPDATE SKIP LOCKED``, each
claim a new epoch, recorded in ``partition_claims``) until it holds its share; one holding more
than its share gives some back. Every time is the database's clock.

The domains take part through ``PartitionParticipant``: told to ``adopt`` what was claimed (load
its rows, arm its timers), to ``release`` what is given back (write what is pending, then forget
it), and to ``drop`` at once, without writing, what this node no longer holds. A node whose
heartbeat fails past its local deadline (sent before the database's expiry: lease - heartbeat
after the last good heartbeat was sent) fences itself: it drops everything and registers again
as a new incarnation; its writes in between are refused by the fence (``engine/storage/fence.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ..ids import PARTITIONS
from .fence import Fence
from .store import SLOTS, Store

log = logging.getLogger("engine.cluster")

NOW = "extract(epoch from clock_timestamp())::float8"
CHANNEL = "cbe_partitions"
ADOPT_CHUNK = 8  # partitions adopted at a time, with a yield to the event loop between chunks

_REGISTER = f"""
INSERT INTO cluster_nodes (name, incarnation, slot, internal_url, platform, version, started_at, heartbeat_at,
                           expires_at)
VALUES ($1, $2, NULL, $3, $4, $5, {NOW}, {NOW}, {NOW} + $6)
ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation, slot = NULL, internal_url = excluded.internal_url,
    platform = excluded.platform, version = excluded.version, started_at = excluded.started_at,
    heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at
"""
_FREE_SLOTS_OF_THE_DEAD = f"UPDATE cluster_nodes SET slot = NULL WHERE expires_at < {NOW} AND slot IS NOT NULL"
_LOWEST_FREE_SLOT = f"""
SELECT min(s) FROM generate_series(0, {SLOTS - 1}) s
WHERE s NOT IN (SELECT slot FROM cluster_nodes WHERE slot IS NOT NULL)
"""
_TAKE_SLOT = "UPDATE cluster_nodes SET slot = $1 WHERE name = $2 AND incarnation = $3"
_HEARTBEAT = f"""
UPDATE cluster_nodes SET heartbeat_at = {NOW}, expires_at = {NOW} + $3
WHERE name = $1 AND incarnation = $2 AND expires_at > {NOW} RETURNING expires_at
"""
# Live nodes and what each holds: the share (target) and the rebalance follow from it.
_SHARES = f"""
SELECT n.name, count(p.id) FROM cluster_nodes n
LEFT JOIN cluster_partitions p ON p.owner = n.name AND p.owner_incarnation = n.incarnation
WHERE n.expires_at > {NOW} GROUP BY n.name
"""
_CLAIM = f"""
WITH free AS (
    SELECT p.id, p.owner, p.epoch AS before FROM cluster_partitions p
    LEFT JOIN cluster_nodes n ON n.name = p.owner AND n.incarnation = p.owner_incarnation
    WHERE p.owner IS NULL OR n.name IS NULL OR n.expires_at < {NOW}
       OR (p.owner = $1 AND p.owner_incarnation = $2 AND NOT p.id = ANY($4::int[]))
    ORDER BY p.id LIMIT $3 FOR UPDATE OF p SKIP LOCKED)
UPDATE cluster_partitions p SET owner = $1, owner_incarnation = $2, epoch = p.epoch + 1, claimed_at = {NOW}
FROM free WHERE p.id = free.id
RETURNING p.id, p.epoch, free.owner, free.before
"""
_RECORD_CLAIM = f"""
INSERT INTO partition_claims (part, epoch, node, incarnation, reason, claimed_at)
VALUES ($1, $2, $3, $4, $5, {NOW})
"""
_RELEASE = """
UPDATE cluster_partitions p SET owner = NULL, owner_incarnation = NULL
FROM unnest($3::int[], $4::bigint[]) AS held(id, epoch)
WHERE p.id = held.id AND p.epoch = held.epoch AND p.owner = $1 AND p.owner_incarnation = $2
"""
_NOTIFY = f"SELECT pg_notify('{CHANNEL}', $1)"
_OTHERS = f"SELECT name, platform FROM cluster_nodes WHERE name <> $1 AND expires_at > {NOW}"
_LEAVE = "DELETE FROM cluster_nodes WHERE name = $1 AND incarnation = $2"


#: What a node registers as its platform when it runs the simulator in its own process.
EMBEDDED = "embedded"


class ClusterRefused(RuntimeError):
    """This node may not join the cluster as it is (an embedded simulator beside other nodes)."""


class PartitionParticipant(Protocol):
    """A domain that keeps rows of partitions in memory (sessions, callbacks, notifications)."""

    async def adopt(self, partitions: dict[int, int]) -> None:
        """Take over ``partitions`` (partition -> epoch held): load their rows, arm their timers."""

    async def release(self, partitions: dict[int, int]) -> None:
        """Write what is pending for ``partitions`` and forget them: this node gives them back."""

    def drop(self, partitions: set[int]) -> None:
        """Forget ``partitions`` at once, writing nothing: this node no longer holds them."""


def share(live: dict[str, int], node: str) -> int:
    """How many partitions ``node`` should hold among the ``live`` nodes: 64 over 3 is 22, 21 and
    21, the larger shares going to the first names, so every node computes the same split and no
    partition goes back and forth between two nodes each a share short."""
    names = sorted(set(live) | {node})
    most, extra = divmod(PARTITIONS, len(names))
    return most + (1 if names.index(node) < extra else 0)


class Membership:
    def __init__(self, store: Store, node: str, *, lease: float, heartbeat: float,
                 participants: Sequence[PartitionParticipant] = (), internal_url: str = "", platform: str = "",
                 version: str = "", key_check: Callable[[Store], Awaitable[None]] | None = None):
        self.store = store
        self.node = node
        self.lease = lease
        self.heartbeat = heartbeat
        self.participants = list(participants)
        self._details = (internal_url, platform, version)
        self._key_check = key_check
        self.incarnation = ""
        self.slot: int | None = None
        self.held: dict[int, int] = {}  # partition -> the epoch this node claimed it at
        self.adopted: set[int] = set()  # held partitions every participant has taken over
        self._on_beat: list[Callable[[], Awaitable[None]]] = []
        self.deadline = 0.0  # monotonic: past it, this node no longer trusts its lease
        self.lease_lost = False  # between a self-fence and the next registration
        self.fences = 0  # self-fences so far (for /health and the tests)
        self._beat_engine: AsyncEngine | None = None
        self._listener: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one change of the held partitions at a time
        self._wake = asyncio.Event()
        self._halted = False  # set by stop/crash: the heartbeat loop ends even if a cancel got lost

    # -- joining ------------------------------------------------------------------------------
    def join(self, participant: PartitionParticipant) -> None:
        """``participant`` is told of every claim, release and drop from now on, after those that
        joined before it (the session manager first: the domains' rows follow its sessions)."""
        self.participants.append(participant)

    def on_beat(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback()`` after every good heartbeat: the sweep of work handed over by other
        nodes whose notification was lost."""
        self._on_beat.append(callback)

    # -- what the writer asks -----------------------------------------------------------------
    def fence(self, partitions: Any = None) -> Fence:
        """The fence of a unit writing ``partitions`` (every held one when None)."""
        held = self.held if partitions is None else {p: self.held[p] for p in partitions if p in self.held}
        return Fence(self.node, self.incarnation, dict(held), idle_limit=max(self.lease - self.heartbeat, 1.0))

    @property
    def lease_remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic()) if not self.lease_lost else 0.0

    @property
    def acting(self) -> bool:
        """Whether this node may take in work from outside: registered, its lease not lost and
        not leaving (a stop gives everything back; what comes after is for the other nodes)."""
        return bool(self.incarnation) and not self.lease_lost and not self._halted

    # -- life ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Register, claim a first share (a lone node restarting takes all at once), then keep
        the lease in the background."""
        self._beat_engine = create_async_engine(
            self.store.engine.url, poolclass=NullPool,
            connect_args={"timeout": self.heartbeat, "command_timeout": self.heartbeat})
        await self.register()
        await self.balance()
        await self._listen()
        self._halted = False
        self._task = asyncio.create_task(self._run(), name=f"cluster membership {self.node}")

    async def _listen(self) -> None:
        """Claim at once when another node gives partitions back (or leaves), not a tick later.
        A lost notification costs at most one heartbeat: every tick looks anyway."""
        assert self._beat_engine is not None
        try:
            self._listener = await self._beat_engine.connect()  # its own connection, held open
            raw = await self._listener.get_raw_connection()
            await raw.driver_connection.add_listener(CHANNEL, lambda *_args: self.poke())
        except Exception as e:
            log.warning("cluster: cannot listen for released partitions (%s); claims wait for the tick", e)

    def poke(self) -> None:
        """Look for partitions to claim now (another node released some)."""
        self._wake.set()

    async def stop(self) -> None:
        """Give every partition back (so the others claim them at once) and leave."""
        await self._halt()
        async with self._lock:
            if self.held and not self.lease_lost:
                try:
                    await self._release(dict(self.held))
                except Exception:
                    log.exception("cluster: releasing the partitions on stop failed; they expire with the lease")
            try:
                async with self.store.engine.begin() as conn:
                    await conn.exec_driver_sql(_LEAVE, (self.node, self.incarnation))
                    await conn.exec_driver_sql(_NOTIFY, ("left",))
            except Exception:
                log.exception("cluster: could not remove this node's row; it expires with the lease")
        await self._close_beat()

    async def crash(self) -> None:
        """Stop heartbeating and touch nothing (as a process killed at once would): for tests."""
        await self._halt()
        await self._close_beat()

    async def _halt(self) -> None:
        """Stop the heartbeat task. A flag as well as a cancel: Python 3.11's ``wait_for`` loses a
        cancel that comes as its inner wait completes, and the loop would then run on for ever."""
        self._halted = True
        self._wake.set()
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=self.heartbeat)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("cluster: the heartbeat task had failed", exc_info=task.exception())

    async def _close_beat(self) -> None:
        if self._listener is not None:
            try:
                await asyncio.wait_for(self._listener.close(), self.heartbeat)
            except Exception:  # a connection cut off: gone with the engine below
                pass
            self._listener = None
        if self._beat_engine is not None:
            await self._beat_engine.dispose()
            self._beat_engine = None

    async def register(self) -> None:
        """A new incarnation of this node under its name (a restart takes over the old one's
        partitions at once: it is dead, since this one holds its port and data folder), with the
        lowest free id slot."""
        internal_url, platform, version = self._details
        while True:
            incarnation = uuid.uuid4().hex
            sent = time.monotonic()
            try:
                async with self.store.engine.begin() as conn:
                    await conn.exec_driver_sql(_REGISTER, (self.node, incarnation, internal_url, platform, version,
                                                           self.lease))
                    await conn.exec_driver_sql(_FREE_SLOTS_OF_THE_DEAD)
                    slot = (await conn.exec_driver_sql(_LOWEST_FREE_SLOT)).scalar()
                    if slot is None:
                        raise RuntimeError(f"cluster: all {SLOTS} id slots are taken by live nodes")
                    await conn.exec_driver_sql(_TAKE_SLOT, (slot, self.node, incarnation))
                    await self._check_platform(conn)
            except IntegrityError:  # another node took the same slot at the same time
                await asyncio.sleep(0.01)
                continue
            break
        if self._key_check is not None:
            await self._key_check(self.store)
        self.incarnation, self.slot = incarnation, slot
        self.deadline = sent + self.lease - self.heartbeat
        self.lease_lost = False
        await self.store.use_slot(slot)
        log.info("cluster: node %s registered (incarnation %s, id slot %d)", self.node, incarnation[:8], slot)

    async def _check_platform(self, conn: AsyncConnection) -> None:
        """An embedded simulator holds the queues and calls in one process: its node must be the
        cluster's only one, and no node joins beside it."""
        platform = self._details[1]
        others = (await conn.exec_driver_sql(_OTHERS, (self.node,))).all()
        if platform == EMBEDDED and others:
            raise ClusterRefused(
                f"cluster: node {self.node} runs the embedded simulator, but other nodes are live "
                f"({', '.join(sorted(n for n, _p in others))}): a cluster of several nodes needs the platform "
                "as its own process (run_engine.py platform, and platform_url on every node)")
        embedded = sorted(n for n, p in others if p == EMBEDDED)
        if embedded:
            raise ClusterRefused(f"cluster: node {embedded[0]} runs the embedded simulator: no other node may join "
                                 "it (give every node the platform process's platform_url)")

    async def _run(self) -> None:
        """The heartbeat, on its own: claims and adoptions (which wait for the storage writer)
        run in ``_claims``, so a slow adoption never holds the next heartbeat back, and a node
        that lost its lease registers again on the next tick even while an adoption waits (the
        writer may be waiting for that registration)."""
        watchdog = asyncio.create_task(self._watch(), name=f"cluster watchdog {self.node}")
        claims = asyncio.create_task(self._claims(), name=f"cluster claims {self.node}")
        try:
            while not self._halted:
                await asyncio.sleep(self.heartbeat)
                try:
                    if self.lease_lost:
                        await self.register()
                    if await self.beat():
                        self._wake.set()
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.warning("cluster: heartbeat failed (%s: %s)", type(e).__name__, e)
        finally:
            watchdog.cancel()
            claims.cancel()

    async def _claims(self) -> None:
        """Balance after every good heartbeat and when poked (partitions given back), then run
        the sweeps (work handed over whose notification was lost)."""
        while not self._halted:
            await self._wake.wait()
            self._wake.clear()
            if self.lease_lost:
                continue
            try:
                await self.balance()
                for callback in self._on_beat:
                    try:
                        await callback()
                    except Exception:
                        log.exception("cluster: a heartbeat sweep failed")
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("cluster: claim failed (%s: %s)", type(e).__name__, e)

    async def _watch(self) -> None:
        """Fence this node at its local deadline, even while a heartbeat hangs."""
        while True:
            wait = self.deadline - time.monotonic()
            if wait > 0 or self.lease_lost:
                await asyncio.sleep(max(wait, self.heartbeat / 4))
                continue
            await self.self_fence("no heartbeat within the lease")

    async def beat(self) -> bool:
        """Renew the lease; False (and fenced) when the database says it has already run out."""
        sent = time.monotonic()
        found = await asyncio.wait_for(self._beat_once(), self.heartbeat)
        if found is None:  # an expired lease is never revived: fence, then register anew
            await self.self_fence("the lease had run out")
            return False
        if not self.lease_lost:
            self.deadline = max(self.deadline, sent + self.lease - self.heartbeat)
        return True

    async def _beat_once(self) -> Any:
        assert self._beat_engine is not None
        async with self._beat_engine.begin() as conn:
            return (await conn.exec_driver_sql(_HEARTBEAT, (self.node, self.incarnation, self.lease))).first()

    async def self_fence(self, why: str) -> None:
        """Drop every partition at once, writing nothing; register again on the next tick."""
        if self.lease_lost:
            return
        self.lease_lost = True
        self.fences += 1
        dropped, self.held = set(self.held), {}
        self.adopted.clear()
        log.warning("cluster: node %s lost its lease (%s); dropping %d partitions", self.node, why, len(dropped))
        for participant in self.participants:
            try:
                participant.drop(dropped)
            except Exception:
                log.exception("cluster: dropping partitions failed in %r", participant)

    def forget(self, partitions: set[int]) -> None:
        """Partitions a write found fenced (``Fenced``): no longer held; the participants drop them."""
        gone = partitions & set(self.held)
        for p in gone:
            del self.held[p]
        self.adopted -= gone
        for participant in self.participants:
            participant.drop(gone)

    # -- claims and rebalance ---------------------------------------------------------------------
    async def balance(self) -> None:
        """Claim up to this node's share; give some back when it holds more than it should."""
        async with self._lock:
            if self.lease_lost:
                return
            async with self.store.engine.connect() as conn:
                live = {name: n for name, n in (await conn.exec_driver_sql(_SHARES)).all()}
            target, held = share(live, self.node), len(self.held)
            if held < target:
                await self._claim(target - held)
            elif held > target:
                await self._release(self._spare(min(4, held - target)))

    def _spare(self, k: int) -> dict[int, int]:
        return {p: self.held[p] for p in sorted(self.held)[-k:]}

    async def _claim(self, k: int) -> None:
        incarnation = self.incarnation
        for _attempt in range(3):
            try:
                claimed = await self._claim_once(k)
                break
            except DBAPIError as e:
                if getattr(e.orig, "sqlstate", None) != "40001":
                    raise
                await asyncio.sleep(0.01)  # another node claimed one of them first: look again
        else:
            return
        if not claimed or self._fenced_since(incarnation):  # the claim was this node's last act
            return
        got = {part: epoch for part, epoch, _owner, _before in claimed}
        log.info("cluster: node %s claimed %d partitions", self.node, len(got))
        self.held.update(got)
        await self.store.reseed()  # the ids minted from now on follow the whole history of what it took
        chunks = sorted(got)
        for start in range(0, len(chunks), ADOPT_CHUNK):
            if self._fenced_since(incarnation):  # the fence dropped them all: adopt no more
                return
            chunk = {p: got[p] for p in chunks[start:start + ADOPT_CHUNK]}
            await self._adopt_chunk(chunk, incarnation)
            if self._fenced_since(incarnation):
                # fenced while the chunk was being adopted: the fence's drop may have come before
                # a participant took it in, so it is dropped again, everywhere
                for participant in self.participants:
                    participant.drop(set(chunk))
                return
            self.adopted.update(p for p in chunk if self.held.get(p) == chunk[p])
            await asyncio.sleep(0)

    async def _adopt_chunk(self, chunk: dict[int, int], incarnation: str) -> None:
        """Every participant takes ``chunk`` in, then (all of them holding it) lets it run. None
        is told to once the node fenced itself: the fence dropped the chunk in those before it,
        and a later one would take its part in without theirs (the callback service would find the
        sessions of its callbacks gone and fail them). Likewise a partition a fenced write made the
        node forget meanwhile is offered to no later participant. The second phase tells each one of
        the part it was offered: a partition forgotten since was taken out of it by the drop."""
        offered: list[tuple[PartitionParticipant, dict[int, int]]] = []
        for participant in self.participants:
            if self._fenced_since(incarnation):
                return
            still = {p: epoch for p, epoch in chunk.items() if self.held.get(p) == epoch}
            if not still:
                break
            await participant.adopt(still)
            offered.append((participant, still))
        for participant, part_of_chunk in offered:  # each told of what it was offered (it keys its work by that)
            if self._fenced_since(incarnation):
                return
            adopted = getattr(participant, "adopted", None)
            if adopted is not None:
                await adopted(part_of_chunk)

    def _fenced_since(self, incarnation: str) -> bool:
        """Whether this node fenced itself (and maybe registered again) since ``incarnation``."""
        return self.lease_lost or self.incarnation != incarnation

    async def _claim_once(self, k: int) -> list[Any]:
        """One claim, in REPEATABLE READ: a partition another node claimed after this statement's
        snapshot fails it (a serialization failure) instead of being re-read under READ COMMITTED,
        where the outer join would still see its old, dead owner and the partition would be
        claimed twice."""
        async with self.store.engine.connect() as plain:
            conn = await plain.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                # ...with any of its own it does not hold (a release whose update failed after the
                # domains had let go): its renewed lease would otherwise keep them from everyone
                claimed = (await conn.exec_driver_sql(_CLAIM, (self.node, self.incarnation, k,
                                                               sorted(self.held)))).all()
                records = []
                for part, epoch, owner, before in claimed:
                    reason = "takeover" if owner == self.node else "expired" if owner else (
                        "released" if before else "free")
                    records.append((part, epoch, self.node, self.incarnation, reason))
                if records:
                    await conn.exec_driver_sql(_RECORD_CLAIM, records)
        return claimed

    async def _release(self, parts: dict[int, int]) -> None:
        """Give ``parts`` back: the participants write and forget them, then the rows are freed
        (only at the epoch held: a partition claimed by another meanwhile stays its) and the other
        nodes are told."""
        if not parts:
            return
        self.adopted -= set(parts)  # leaving: nothing new is placed in them
        for participant in self.participants:
            await participant.release(parts)
        for p in parts:
            self.held.pop(p, None)
            self.adopted.discard(p)
        async with self.store.engine.begin() as conn:
            await conn.exec_driver_sql(_RELEASE, (self.node, self.incarnation, list(parts), list(parts.values())))
            await conn.exec_driver_sql(_NOTIFY, ("released",))
        log.info("cluster: node %s released %d partitions", self.node, len(parts))
