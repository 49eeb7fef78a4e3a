"""The engine's side of the platform process (``server.py``): a ``Platform`` reached over a WebSocket.

The adapter protocol is synchronous, so what the engine reads (queue figures, positions) comes
from a mirror the platform keeps current with ``queue`` frames. What changes the platform goes
out as frames and is made safe by the engine's own storage, as for any durable party:

- a request is an outbox effect: ``handle`` returns a future resolved by the platform's ``ack``,
  and only then is the outbox row deleted. A request replayed after a crash carries the same key
  (session/send id), which the platform acks without performing it twice;
- an event goes to its session through the inbox (``route_event``); its ``eack`` goes out only
  after the commit that stored it, together with the event numbers seen (``engine_values``), so an
  event the platform sends again after a crash is recognised and dropped;
- in a cluster (``join_cluster``), an event for a session another node runs is handed over to it
  (``send_to`` with the source ``p<platform incarnation>:<seq>``, so a copy sent again, to this
  node or another, inserts nothing) and acked once that handoff is written; one taken here writes
  its source with the batch that stores it, and one the platform sends ``again`` goes through its
  source even when its session runs here (``event_sources.py``): a node killed after its commit
  but before its ack does not get the event applied twice by the next holder; after a claim the node
  binds the claimed partitions' sessions (``bind{sids}``: their events come straight here), and
  after a reconnect binds again what it holds; released or dropped partitions are no longer bound;
- a platform that restarted (a new incarnation: its queues and calls are gone) is told to the
  flows as ``platform.restarted``; requests not yet acked by the old one are dropped with it.

Disconnected, requests and drops wait and are sent on reconnect (backoff up to ``MAX_BACKOFF``).

With a ``platform_key`` the handshake is signed (``auth.py``) and the platform's ``welcome``
must carry its proof over the same nonce; until one does, nothing the other end sends is
believed (no event taken, no queue mirrored). A refusal (401, or a welcome without a valid
proof) is logged as an ERROR naming the setting and retried like an unreachable platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import aiohttp

from ..ids import partition_of
from ..scxml.clock import Clock
from ..sessions.manager import NoSuchSession
from .adapter import Deliver, Position, QueueListener, QueueStats
from .auth import SETTING, proof_ok, sign
from .event_sources import SOURCES, source_of, source_rows
from .ioprocessor import platform_event

if TYPE_CHECKING:
    from ..storage.membership import Membership

    SendTo = Callable[..., None]  # SessionManager.send_to(session_id, event, *, source=...)

log = logging.getLogger("engine.platform.remote")

STATE_KEY = "platform_remote"  # engine_values: the platform incarnation and the event numbers seen
MAX_BACKOFF = 2.0
REFUSED_LOG_SECONDS = 60.0  # a refusal repeated on every retry is logged again at most this often
BIND_CHUNK = 2000  # session ids per bind frame


class RemotePlatform:
    """A ``Platform`` whose queues, agents and calls live in the platform process."""

    durable = True

    def __init__(self, url: str, node: str, session: Callable[[], aiohttp.ClientSession] | None = None,
                 key: str | None = None):
        self.url = url.rstrip("/")
        self.node = node
        self.key = key  # platform_key: signs the handshake, checks the platform's proof
        self.incarnation = uuid.uuid4().hex  # this node process
        self.clock: Clock | None = None  # set by the composition root once built
        self.scale_hint = 1.0
        self.platform_incarnation: str | None = None
        self.on_restarted: Callable[[], None] | None = None  # tells the flows (composition root)
        self._make_session = session or aiohttp.ClientSession
        self._sinks: list[Deliver] = []
        self._listeners: list[QueueListener] = []
        self._stats: dict[str, QueueStats] = {}
        self._waiting: dict[str, list[str]] = {}  # queue -> its waiting sessions
        self._positions: dict[str, Position] = {}
        self._requests: dict[str, tuple[dict[str, Any], asyncio.Future[None]]] = {}  # key -> frame, ack
        self._drops: list[str] = []
        self._seen: set[int] = set()  # event numbers of this platform incarnation taken in
        self._floor = 0
        self._to_ack: list[int] = []  # taken in, not yet in a batch
        self._in_batch: list[int] = []  # in the batch being written
        self._handed: list[int] = []  # handed over to another node, not yet certainly written
        self._send_to: Callable[..., None] | None = None  # a cluster's SessionManager.send_to
        self._running: Callable[[], Iterable[str]] = tuple  # the sessions running on this node
        self._membership: Membership | None = None  # a cluster node's (what it holds)
        self._local: dict[int, str] = {}  # seq -> session, of events taken here not yet acked (cluster)
        self._held_back: dict[str, set[int]] = {}  # session -> its events left untaken, to come again (cluster)
        self._binding: set[int] = set()  # partitions whose sessions this node binds (a cluster's)
        self.handoffs = 0  # events handed over to another node (cluster)
        self.taken_again = 0  # events sent again, taken through their source (cluster)
        self._stored_state: dict[str, Any] | None = None
        self._dirty_state = False  # the incarnation or floor changed: store it with the next batch
        self._clock_hint: float | None = None
        self._welcome_clock, self._welcome_scale = 0.0, 1.0
        self._restart_due = False
        self._started = False  # sessions restored: events and platform.restarted can be taken in
        self._early: list[dict[str, Any]] = []  # events that came before the sessions were restored
        self._persist: Callable[[], None] | None = None  # asks the manager for a batch
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self._writes: set[asyncio.Task] = set()
        self._welcomed = asyncio.Event()
        self._disconnected_since: float | None = time.monotonic()
        self._last_error = "not connected yet"
        self._closed = False
        self._nonce: str | None = None  # of this connection's signed handshake
        self._believed = False  # this connection's welcome was checked: its frames are taken
        self._refused_logged: tuple[str, float] | None = None  # the last refusal logged, and when

    # -- wiring ----------------------------------------------------------------------------------
    def load_state(self, stored: str | None) -> None:
        """What the last run stored: the platform incarnation it talked to, the events it took in."""
        if stored:
            try:
                state = json.loads(stored)
                self._stored_state = state
                self.platform_incarnation = state.get("incarnation")
                self._seen = {int(s) for s in state.get("seen", ())}
                self._floor = int(state.get("floor", 0))
            except (ValueError, TypeError, AttributeError):
                log.error("stored platform state unreadable; starting afresh")

    def join_storage(self, contributors: list, after_commit: list, request_write: Callable[[], None]) -> None:
        """Write the event numbers with the batch that stores the events; ack them after its commit."""
        contributors.append(self._contribute)
        after_commit.append(self._after_commit)
        self._persist = request_write

    def join_cluster(self, membership: Membership, send_to: SendTo, running: Callable[[], Iterable[str]]) -> None:
        """A cluster node: hand events for sessions not running here to their holder
        (``send_to``), and take part in the membership so claimed partitions' sessions are bound
        here (``running`` lists the sessions running on this node)."""
        self._send_to, self._running, self._membership = send_to, running, membership
        # The nodes store one platform state, the last writer's: numbers another node took in (or
        # put in a batch its fence refused) are not this node's to ack unstored. A copy sent again
        # is recognised by its source instead (``event_sources.py``).
        self._seen = set()
        membership.join(PlatformBinding(self))

    def _contribute(self, batch: Any) -> None:
        if not self._to_ack and not self._dirty_state and not self._handed:
            return
        cluster = self._membership is not None
        if cluster and self._to_ack:  # taken here: their sources with them
            taken = {seq: sid for seq in self._to_ack if (sid := self._local.get(seq)) is not None}
            if taken:
                batch.add(SOURCES, source_rows(self.platform_incarnation, taken))
        self._in_batch.extend(self._to_ack)
        # A handoff is written at the start of the batch after the one being built now (the
        # manager writes them before building; one made while that write was awaited waits
        # for the next batch): acked after that one, so nothing is acked before it is stored.
        self._to_ack, self._handed = self._handed, []
        if self._to_ack and self._persist is not None:
            self._persist()
        if cluster and not self._dirty_state:
            return  # the sources recognise a copy sent again: only a new platform incarnation is stored
        self._dirty_state = False
        batch.values[STATE_KEY] = json.dumps({"incarnation": self.platform_incarnation, "floor": self._floor,
                                              "seen": [] if cluster else sorted(self._seen)})

    def _after_commit(self) -> None:
        if self._in_batch:
            seqs, self._in_batch = self._in_batch, []
            if self._membership is not None:
                seqs = self._keep_unfenced(seqs, self._membership.held)
            self._send({"t": "eack", "seqs": seqs})

    async def connect(self, clock_hint: float | None, scale_hint: float, timeout: float) -> tuple[float, float] | None:
        """Start the connection; wait up to ``timeout`` for the platform's welcome and return its
        clock and scale (None when it cannot be reached yet: the engine starts on its own clock)."""
        self._clock_hint, self.scale_hint = clock_hint, scale_hint
        self._http = self._make_session()
        self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            await asyncio.wait_for(self._welcomed.wait(), timeout)
        except TimeoutError:
            log.warning("platform %s not reachable within %g s (%s); starting on the local clock",
                        self.url, timeout, self._last_error)
            return None
        return self._welcome_clock, self._welcome_scale

    def started(self) -> None:
        """Sessions are restored: a platform restart noticed before now is told to the flows."""
        self._started = True
        if self._restart_due:
            self._tell_restarted()
        early, self._early = self._early, []
        for frame in early:
            self._event(frame)

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.close()

    # -- the connection --------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.05
        while not self._closed:
            try:
                assert self._http is not None
                headers = {}
                self._believed, self._nonce = False, None
                if self.key:
                    headers["Authorization"], self._nonce = sign(self.key, "GET", "/platform/ws")
                async with self._http.ws_connect(self.url + "/platform/ws", heartbeat=5.0, headers=headers,
                                                 max_msg_size=16 * 1024 * 1024) as ws:
                    now = self.clock.now() if self.clock else self._clock_hint
                    scale = getattr(self.clock, "scale", 1.0) if self.clock else self.scale_hint
                    # Before its clock is built a node takes the platform's ("adopt"); after, the
                    # platform refuses a node whose time runs at another speed.
                    await ws.send_json({"t": "hello", "node": self.node, "incarnation": self.incarnation,
                                        "clock": now, "scale": scale, "adopt": self.clock is None})
                    self._ws = ws
                    left = False
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            continue
                        if not self._frame(json.loads(msg.data)):
                            left = True  # not the platform (or one without our key): nothing more is read
                            break
                        delay = 0.05
                if not left:
                    self._last_error = f"connection closed ({ws.close_code})"
            except asyncio.CancelledError:
                raise
            except aiohttp.WSServerHandshakeError as e:
                if e.status == 401:
                    self._refused(f"refused by the platform (401): this node's {SETTING} is missing or "
                                  "not the platform process's")
                else:
                    self._last_error = f"{type(e).__name__}: {e}"
            except (aiohttp.ClientError, OSError, ValueError) as e:
                self._last_error = f"{type(e).__name__}: {e}"
            finally:
                self._ws = None
            if self._disconnected_since is None:
                self._disconnected_since = time.monotonic()
                log.warning("platform %s connection lost (%s); reconnecting", self.url, self._last_error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    def _refused(self, reason: str) -> None:
        """An ERROR naming the platform and the setting: once, then at most every
        ``REFUSED_LOG_SECONDS`` while the same refusal repeats on each retry."""
        self._last_error = reason
        now = time.monotonic()
        last = self._refused_logged
        if last is None or last[0] != reason or now - last[1] >= REFUSED_LOG_SECONDS:
            self._refused_logged = (reason, now)
            log.error("platform %s: %s; retrying", self.url, reason)

    def _send(self, frame: dict[str, Any]) -> bool:
        ws = self._ws
        if ws is None or ws.closed or self._disconnected_since is not None:
            return False
        # send_str only queues the frame on the transport (aiohttp awaits no drain for it), so
        # frames leave in the order they were made.
        task = asyncio.get_running_loop().create_task(self._write(ws, frame))
        self._writes.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._writes.discard)
        return True

    async def _write(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await ws.send_str(json.dumps(frame, separators=(",", ":")))

    def _frame(self, frame: dict[str, Any]) -> bool:
        """Take one frame; False when the connection must be left (the other end is not believed)."""
        kind = frame.get("t")
        if not self._believed and kind not in ("welcome", "error"):
            self._refused(f"frame {kind!r} before a welcome; not the platform")
            return False
        if kind == "welcome" and self.key and not proof_ok(self.key, self._nonce or "", frame.get("proof")):
            self._refused(f"its welcome does not prove it holds {SETTING}: a platform process without "
                          "this key, or not the platform")
            return False
        if kind == "ev":
            self._event(frame)
        elif kind == "ack":
            entry = self._requests.pop(str(frame.get("k")), None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(None)
        elif kind == "queue":
            self._mirror(frame)
        elif kind == "welcome":
            self._welcome(frame)
        elif kind == "error":
            self._last_error = f"refused by the platform: {frame.get('reason')}"
            log.error("platform %s: %s", self.url, frame.get("reason"))
        else:
            log.warning("unknown frame %r from the platform", kind)
        return True

    def _welcome(self, frame: dict[str, Any]) -> None:
        incarnation = str(frame.get("incarnation"))
        self._welcome_clock, self._welcome_scale = float(frame.get("clock") or 0), float(frame.get("scale") or 1)
        self._believed, self._refused_logged = True, None
        restarted = incarnation != self.platform_incarnation
        if restarted:
            # A platform we never talked to (or that lost everything): its event numbers start
            # again, and requests the old one never acked are gone with it.
            known = self.platform_incarnation
            self.platform_incarnation = incarnation
            self._seen, self._floor, self._dirty_state = set(), 0, True
            self._held_back = {}
            if known is not None:
                log.warning("the platform restarted (incarnation %s, was %s): its calls and queues are gone",
                            incarnation, known)
                for _frame, future in self._requests.values():
                    if not future.done():
                        future.set_result(None)
                self._requests.clear()
                self._drops.clear()
            # Sessions restored from a run that talked to no platform process (the embedded
            # simulator's) have calls nobody holds now; sessions made since by this run do not.
            if known is not None or (self._stored_state is None and not self._started):
                self._restart_due = True
            if self._persist is not None:
                self._persist()
        self._stats.clear()
        self._waiting.clear()
        self._positions.clear()
        for queue in frame.get("queues") or ():
            self._mirror(queue, notify=False)
        self._disconnected_since = None
        self._welcomed.set()
        log.info("platform %s connected (incarnation %s, %d queues)", self.url, incarnation, len(self._stats))
        for request, _future in self._requests.values():  # in the order they were made
            self._send(request)
        drops, self._drops = self._drops, []
        for sid in drops:
            self._send({"t": "drop", "sid": sid})
        self._bind(self._binding)  # what this node holds, again (the platform may be a new one)
        if self._restart_due and self._started:
            self._tell_restarted()
        for name in list(self._stats):
            self._notify(name)

    def _tell_restarted(self) -> None:
        self._restart_due = False
        if self.on_restarted is not None:
            try:
                self.on_restarted()
            except Exception:
                log.exception("telling the flows platform.restarted failed")

    def _event(self, frame: dict[str, Any]) -> None:
        if not self._started:  # their sessions are not restored yet: nobody could take them
            self._early.append(frame)
            return
        seq = int(frame["seq"])
        sid = str(frame.get("sid"))
        if self._membership is not None and not self._membership.acting:
            # Leaving, or without a lease: neither taken nor acked; the platform sends it again.
            self._hold_back(sid, seq)
            return
        floor = int(frame.get("floor") or 0)
        if floor > self._floor:  # everything below is acked: nothing there can come again
            self._floor = floor
            self._seen = {s for s in self._seen if s >= floor}
            self._held_back = {k: kept for k, v in self._held_back.items() if (kept := {s for s in v if s >= floor})}
        if seq in self._seen:
            if seq not in self._to_ack and seq not in self._in_batch:
                self._send({"t": "eack", "seqs": [seq]})  # stored before: the ack was lost
            return
        if self._overtakes(sid, seq):
            return  # an earlier event of its session is still to come again: neither taken nor acked
        name = str(frame.get("name"))
        data = frame.get("data") if isinstance(frame.get("data"), dict) else {}
        # Sent before (a cluster's): some node may have stored it already, its ack lost with it.
        # Taken through its source even for a session running here, so it lands at most once.
        again = self._send_to is not None and bool(frame.get("again"))
        taken = False
        for sink in () if again else list(self._sinks):
            try:
                taken = bool(sink(sid, name, data)) or taken
            except Exception:
                taken = True  # it ran here: not handed over as well
                log.exception("delivering %s to session %s failed", name, sid)
        if not taken and self._hand_over(sid, name, data, seq, again):
            # Not among the numbers seen: a copy sent again is handed over again, and the
            # holder's inbox takes one (its source is the same).
            self._handed.append(seq)
            self._persist()  # type: ignore[misc]  # a cluster node has storage
            return
        self._seen.add(seq)
        if self._membership is not None:
            self._local[seq] = sid
        if self._persist is None:
            self._send({"t": "eack", "seqs": [seq]})
        else:
            self._to_ack.append(seq)
            self._persist()

    def _hold_back(self, sid: str, seq: int) -> None:
        """``seq`` of session ``sid`` was not taken (and not acked): the platform sends it again,
        and until then the session's later events are not taken either (``_overtakes``)."""
        if self._membership is not None:
            self._held_back.setdefault(sid, set()).add(seq)

    def _overtakes(self, sid: str, seq: int) -> bool:
        """Whether taking ``seq`` now would put it before an earlier event of its session that was
        left untaken here and is to come again: a session's events must reach it in order (a
        ``call.ended`` taken before the ``route.done`` it follows is dropped by the flow, which
        then waits for ever). The earlier one taken again clears the way."""
        held = self._held_back.get(sid)
        if not held:
            return False
        held.discard(seq)
        if any(s < seq for s in held):
            return True
        if not held:
            del self._held_back[sid]
        return False

    def _keep_unfenced(self, seqs: list[int], held: dict[int, int]) -> list[int]:
        """The events of a batch that were stored: one raised in a session of a partition the
        write found fenced (no longer held) was left out, so it is not acked (nor seen): the
        platform sends it again, and this node hands it over to the partition's next holder."""
        stored = []
        for seq in seqs:
            sid = self._local.pop(seq, None)
            if sid is not None and partition_of(sid) not in held:
                self._seen.discard(seq)
                self._hold_back(sid, seq)
                log.warning("platform event %d for session %s not acked: its partition was lost", seq, sid)
            else:
                stored.append(seq)
        return stored

    def _hand_over(self, sid: str, name: str, data: dict[str, Any], seq: int, again: bool = False) -> bool:
        """An event for a session not running here (or sent ``again``: wherever it runs), to its
        partition's holder through its source (a cluster's); False when there is none to hand it
        to (no cluster, or the partition is held here and the session ended: skipped, as an
        embedded platform's event for an ended session is)."""
        if self._send_to is None or self._persist is None:
            return False
        try:
            self._send_to(sid, platform_event(name, data), source=source_of(self.platform_incarnation, seq))
        except NoSuchSession:
            return False
        if again:
            self.taken_again += 1
        else:
            self.handoffs += 1
        return True

    def bind_partitions(self, partitions: set[int]) -> None:
        """Events of the sessions of ``partitions`` (restored here) to this node, now and after
        every reconnect."""
        self._binding |= partitions
        self._bind(partitions)

    def unbind_partitions(self, partitions: set[int]) -> None:
        self._binding -= partitions
        self._forget_taken(partitions)

    def _forget_taken(self, partitions: set[int]) -> None:
        """Events taken here for sessions of ``partitions`` and not acked yet, when the partitions
        are dropped (a fence) or given back: what would have stored them may have been forgotten
        unwritten with the partition, and a claim of it again before the ack would make them look
        stored. Neither acked nor counted as seen: the platform sends them again, and a copy whose
        first one was stored after all finds its source (``event_sources.py``)."""
        gone = {seq for seq, sid in self._local.items() if partition_of(sid) in partitions}
        if not gone:
            return
        for seq in gone:
            self._hold_back(self._local.pop(seq), seq)
        self._to_ack = [seq for seq in self._to_ack if seq not in gone]
        self._in_batch = [seq for seq in self._in_batch if seq not in gone]
        self._seen -= gone

    def _bind(self, partitions: Iterable[int]) -> None:
        parts = set(partitions)
        if not parts:
            return
        sids = [sid for sid in self._running() if partition_of(sid) in parts]
        for start in range(0, len(sids), BIND_CHUNK):
            self._send({"t": "bind", "sids": sids[start:start + BIND_CHUNK]})

    def _mirror(self, frame: dict[str, Any], notify: bool = True) -> None:
        name = str(frame.get("name"))
        try:
            self._stats[name] = QueueStats(**frame["stats"])
        except (KeyError, TypeError):
            log.error("queue frame for %s unreadable", name)
            return
        for sid in self._waiting.pop(name, ()):
            found = self._positions.get(sid)
            if found is not None and found.queue == name:
                del self._positions[sid]
        waiting = frame.get("waiting") or []
        total = len(waiting)
        self._waiting[name] = [str(sid) for sid, _pos, _ewt in waiting]
        for sid, position, ewt in waiting:
            self._positions[str(sid)] = Position(queue=name, position=int(position), total_waiting=total,
                                                 ewt_seconds=float(ewt))
        if notify:
            self._notify(name)

    def _notify(self, name: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(name)
            except Exception:
                log.exception("queue listener failed for %s", name)

    # -- Platform ----------------------------------------------------------------------------------
    def attach(self, deliver: Deliver) -> Callable[[], None]:
        self._sinks.append(deliver)

        def detach() -> None:
            if deliver in self._sinks:
                self._sinks.remove(deliver)

        return detach

    def handle(self, session_id: str, request: str, data: dict[str, Any]) -> asyncio.Future[None]:
        """The future completes once the platform has the request (its outbox row may go then)."""
        key = f"{session_id}/{data.get('request_id')}" if data.get("request_id") is not None \
            else f"{session_id}/{uuid.uuid4().hex}"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        previous = self._requests.get(key)
        if previous is not None:  # the same request again (a replay): one ack answers both
            previous[1].add_done_callback(lambda _f: future.done() or future.set_result(None))
            return future
        frame = {"t": "req", "k": key, "sid": session_id, "request": request, "data": data}
        self._requests[key] = (frame, future)
        self._send(frame)
        return future

    def queue_stats(self, queue: str) -> QueueStats:
        return self._stats[queue]

    def position(self, session_id: str) -> Position | None:
        return self._positions.get(session_id)

    def call_in(self, number: str, access_code: str) -> str | None:
        raise RuntimeError(f"call-ins are made at the platform process ({self.url}/admin/simulator/call-in); "
                           "the engine's admin route proxies there")

    def drop(self, session_id: str) -> None:
        for sid in [s for s, p in self._positions.items() if s == session_id]:
            del self._positions[sid]
        if not self._send({"t": "drop", "sid": session_id}):
            self._drops.append(session_id)

    def add_listener(self, fn: QueueListener) -> None:
        self._listeners.append(fn)

    @property
    def queues(self) -> list[str]:
        return list(self._stats)

    @property
    def connected(self) -> bool:
        return self._disconnected_since is None

    def health(self) -> tuple[bool, str]:
        if self._disconnected_since is not None:
            since = time.monotonic() - self._disconnected_since
            return False, f"platform {self.url} unreachable for {since:.1f} s ({self._last_error})"
        return True, f"platform {self.url}: {len(self._stats)} queues, {len(self._requests)} requests unacked"


class PlatformBinding:
    """A cluster node's ``RemotePlatform`` as a partition participant: after a claim (the session
    manager adopts first, so the sessions are restored) the platform sends those sessions'
    events here; given back or dropped, they are no longer bound on a reconnect (the next holder
    binds them; meanwhile events still sent here are handed over)."""

    def __init__(self, platform: RemotePlatform):
        self.platform = platform

    async def adopt(self, partitions: dict[int, int]) -> None:
        self.platform.bind_partitions(set(partitions))

    async def release(self, partitions: dict[int, int]) -> None:
        self.drop(set(partitions))

    def drop(self, partitions: set[int]) -> None:
        self.platform.unbind_partitions(partitions)
