"""The platform as its own process (``run_engine.py platform``): the simulator behind a WebSocket.

In a cluster no engine node may own the queues, agents and calls, so the simulator runs here and
the nodes reach it the way they would reach a real telephony adapter (``remote.py``). The
protocol is JSON frames over ``GET /platform/ws``:

node -> platform
    ``hello{node, incarnation, clock, scale, adopt}``  first frame; answered ``welcome``
    ``req{k, sid, request, data}``             answered ``ack{k}``; a ``k`` seen before is acked
                                               again and *not* performed (an outbox replay)
    ``drop{sid}``                              the session ended: leave its queues
    ``bind{sids}``                             these sessions' events to me (a cluster node that
                                               claimed their partitions); a request binds its
                                               session to its sender too, and only sessions that
                                               made requests are bound
    ``eack{seqs}``                             these events are stored by the node
platform -> node
    ``welcome{incarnation, clock, scale, queues}``
    ``ev{seq, sid, name, data, floor, again}`` sent again after ``RESEND_SECONDS`` until acked
                                               (then with ``again``: it went out before);
                                               ``floor``: every seq below it is acked; a
                                               session's events go out in order (an earlier
                                               one unacked on another connection goes first)
    ``queue{name, stats, waiting}``            a queue changed (coalesced per ``QUEUE_FRAME_SECONDS``)
    ``error{reason}``                          then the platform closes the connection

The clock: the first node's ``hello`` gives it (its simulated time and scale), so node and
platform timers agree; the simulator is built only then. A node starting later takes the
platform's clock (``adopt``); a running node whose clock runs at another scale is refused. A
platform that restarts has a new ``incarnation``: the nodes tell their flows ``platform.restarted``.

Who may talk to it: every route but ``/health`` needs a request signed with the shared
``platform_key`` (``auth.py``; the process reads it from ``CALLBACK_ENGINE_PLATFORM_KEY`` or
``..._FILE``, as the nodes do). Without it the WebSocket upgrade is refused with 401 before
anything is read, so nobody else can say ``hello``, ``bind`` sessions to take their events, or
make requests in a node's name; ``/platform/stats`` and ``/admin/simulator`` (GET: queues,
calls and phone numbers; PUT and ``call-in``: they change the simulator) are refused alike.
``/health`` stays open for probes and says only whether the simulator is up. The ``welcome``
carries ``proof``: the node believes only a platform that holds the key too. A platform
started without a key accepts anyone: ``run_engine.py platform`` allows that on a loopback
address only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from ..scxml.clock import Clock, ScaledClock
from .auth import PROOF_HEADER, SCHEME, Refused, Verifier, proof
from .config import SimulatorConfig, load_simulator_config, save_simulator_config
from .simulator import Simulator

log = logging.getLogger("engine.platform.server")

RESEND_SECONDS = 5.0  # an event not acked this long is sent again
REQUEST_MEMORY_SECONDS = 3600.0  # a request key is remembered (and a replay of it ignored) this long
QUEUE_FRAME_SECONDS = 0.1  # at most this often a queue's figures go out
CALL_IN_WAIT_SECONDS = 5.0  # a call-in answers once a node has stored callin.arrived (or after this)


@dataclass(eq=False)
class Link:
    """One node's live connection; frames go out in order through one sender task."""

    node: str
    ws: web.WebSocketResponse
    out: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    sender: asyncio.Task | None = None

    def send(self, frame: dict[str, Any]) -> None:
        self.out.put_nowait(json.dumps(frame, separators=(",", ":")))

    async def pump(self) -> None:
        while (text := await self.out.get()) is not None:
            if self.ws.closed:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as e:  # the node went away; what it missed is resent
                log.info("node %s: connection closing (%s)", self.node, e)
                return


@dataclass(eq=False, slots=True)
class PendingEvent:
    seq: int
    sid: str
    name: str
    data: dict[str, Any]
    sent_at: float = 0.0  # monotonic; 0: not sent yet
    link: Link | None = None  # the connection it was last sent on


@dataclass
class NodeStats:
    requests: int = 0  # performed
    duplicates: int = 0  # acked again, not performed
    events_sent: int = 0
    events_resent: int = 0
    events_acked: int = 0
    connects: int = 0
    bound: int = 0  # sessions bound by bind frames


class PlatformServer:
    """The simulator, its connected nodes, the events they have not stored yet."""

    def __init__(self, config_dir: Path, key: str | None = None):
        self.key = key
        self.verifier = Verifier(key) if key else None
        self.config_path = Path(config_dir) / "simulator.toml"
        self.config = load_simulator_config(self.config_path) if self.config_path.is_file() else SimulatorConfig()
        self.incarnation = uuid.uuid4().hex
        self.simulator: Simulator | None = None
        self.links: dict[str, Link] = {}
        self.bound: dict[str, str] = {}  # session -> the node that sent its last request or bound it
        self.pending: dict[int, PendingEvent] = {}
        self.requests: dict[str, float] = {}  # request key -> when first seen (monotonic)
        self.stats: dict[str, NodeStats] = {}
        self.by_request: dict[str, int] = {}
        self.dials: dict[str, int] = {}  # number -> dials performed
        self._seq = 0
        self._dirty_queues: dict[str, None] = {}
        self._queue_flush: asyncio.TimerHandle | None = None
        self._acked: dict[int, asyncio.Future[None]] = {}  # call-ins waiting for their event's ack
        self._ticker: asyncio.Task | None = None

    # -- the simulator, built on the first hello ------------------------------------------------
    def _adopt_clock(self, clock_now: Any, scale: Any) -> None:
        scale = float(scale) if isinstance(scale, int | float) and scale > 0 else self.config.time_scale
        start = float(clock_now) if isinstance(clock_now, int | float) else None
        clock: Clock = ScaledClock(scale, start=start) if scale != 1 else Clock()
        self.config.time_scale = scale
        self.simulator = Simulator(self.config, clock, deliver=self._event)
        self.simulator.add_listener(self._queue_changed)
        log.info("platform clock adopted: scale %g, now %.1f", scale, clock.now())

    @property
    def scale(self) -> float:
        return getattr(self.simulator.clock, "scale", 1.0) if self.simulator else self.config.time_scale

    # -- events: numbered, kept until a node stored them ----------------------------------------
    def _event(self, sid: str, name: str, data: dict[str, Any]) -> None:
        self._seq += 1
        event = self.pending[self._seq] = PendingEvent(self._seq, sid, name, data)
        self._send_event(event)

    def _target(self, sid: str) -> Link | None:
        link = self.links.get(self.bound.get(sid, ""))
        if link is None and self.links:
            link = next(iter(self.links.values()))  # any live node: in a cluster it hands the event over
        return link

    def _send_event(self, event: PendingEvent) -> None:
        link = self._target(event.sid)
        if link is None:
            return  # kept until a node connects
        # A session's events must reach it in order: an earlier one still unacked that went out
        # on another connection (one that closed, or a node that stopped taking events) goes
        # again first, on this one. Otherwise a later event (call.ended) handed over at once
        # overtakes it (route.done, resent only after RESEND_SECONDS) and the flow, not yet in
        # the state that awaits it, discards it.
        for earlier in [e for e in self.pending.values() if e.seq < event.seq and e.sid == event.sid]:
            if earlier.link is not link:
                self._put(link, earlier)
        self._put(link, event)

    def _put(self, link: Link, event: PendingEvent) -> None:
        stats = self._stats(link.node)
        frame = {"t": "ev", "seq": event.seq, "sid": event.sid, "name": event.name, "data": event.data,
                 "floor": self._floor()}
        if event.sent_at:
            stats.events_resent += 1
            frame["again"] = 1  # a node may have stored it already: a cluster takes it through its source
        else:
            stats.events_sent += 1
        event.sent_at, event.link = time.monotonic(), link
        link.send(frame)

    def _floor(self) -> int:
        return next(iter(self.pending), self._seq + 1)

    def _acked_by(self, node: str, seqs: list[Any]) -> None:
        stats = self._stats(node)
        for seq in seqs:
            if self.pending.pop(seq, None) is not None:
                stats.events_acked += 1
            waiter = self._acked.pop(seq, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- queues: mirrored by every node ----------------------------------------------------------
    def _queue_changed(self, queue: str) -> None:
        self._dirty_queues[queue] = None
        if self._queue_flush is None:
            self._queue_flush = asyncio.get_running_loop().call_later(QUEUE_FRAME_SECONDS, self._flush_queues)

    def _flush_queues(self) -> None:
        self._queue_flush = None
        dirty, self._dirty_queues = list(self._dirty_queues), {}
        for name in dirty:
            frame = self._queue_frame(name)
            if frame is not None:
                for link in self.links.values():
                    link.send(frame)

    def _queue_frame(self, name: str) -> dict[str, Any] | None:
        sim = self.simulator
        if sim is None or name not in sim.queues:
            return None
        return {"t": "queue", "name": name, "stats": asdict(sim.queue_stats(name)),
                "waiting": [list(w) for w in sim.waiting(name)]}

    def _queues_now(self) -> list[dict[str, Any]]:
        assert self.simulator is not None
        return [frame for name in self.simulator.queues if (frame := self._queue_frame(name)) is not None]

    # -- the WebSocket ---------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=5.0, max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        link: Link | None = None
        try:
            first = await ws.receive(timeout=10)
            hello = json.loads(first.data) if first.type == WSMsgType.TEXT else {}
            if hello.get("t") != "hello" or not isinstance(hello.get("node"), str):
                await ws.send_json({"t": "error", "reason": "the first frame must be hello{node, ...}"})
                return ws
            if self.simulator is None:
                self._adopt_clock(hello.get("clock"), hello.get("scale"))
            elif not hello.get("adopt") and isinstance(hello.get("scale"), int | float) \
                    and hello["scale"] != self.scale:
                reason = f"time scale {hello['scale']:g} differs from the platform's {self.scale:g}"
                log.error("node %s refused: %s", hello["node"], reason)
                await ws.send_json({"t": "error", "reason": reason})
                return ws
            link = Link(hello["node"], ws)
            old = self.links.pop(link.node, None)
            if old is not None:  # the node reconnected before its old connection was noticed gone
                old.out.put_nowait(None)
                await old.ws.close()
            self.links[link.node] = link
            self._stats(link.node).connects += 1
            link.sender = asyncio.get_running_loop().create_task(link.pump())
            assert self.simulator is not None
            welcome = {"t": "welcome", "incarnation": self.incarnation, "clock": self.simulator.clock.now(),
                       "scale": self.scale, "queues": self._queues_now()}
            if self.key:  # the node believes nothing of a platform that cannot show it holds the key
                welcome["proof"] = proof(self.key, request[NONCE])
            link.send(welcome)
            log.info("node %s connected (incarnation %s)", link.node, hello.get("incarnation"))
            for event in list(self.pending.values()):  # what no live node holds goes to this one
                owner = self.bound.get(event.sid)
                if owner is None or owner == link.node or owner not in self.links:
                    self._send_event(event)
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                self._frame(link, json.loads(msg.data))
        except (TimeoutError, ValueError) as e:
            log.warning("connection dropped: %s", e)
        finally:
            if link is not None:
                if self.links.get(link.node) is link:
                    del self.links[link.node]
                    log.info("node %s disconnected", link.node)
                link.out.put_nowait(None)
        return ws

    def _frame(self, link: Link, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        if kind == "req":
            self._request(link, frame)
        elif kind == "eack":
            self._acked_by(link.node, list(frame.get("seqs") or ()))
        elif kind == "bind":  # only sessions that made requests have events (and are dropped when done)
            known = [sid for sid in map(str, frame.get("sids") or ()) if sid in self.bound]
            self.bound.update(dict.fromkeys(known, link.node))
            self._stats(link.node).bound += len(known)
        elif kind == "drop":
            sid = str(frame.get("sid"))
            if self.simulator is not None:
                self.simulator.drop(sid)
            self.bound.pop(sid, None)
            for seq in [e.seq for e in self.pending.values() if e.sid == sid]:
                del self.pending[seq]  # the session ended: nobody will take them
        else:
            log.warning("unknown frame %r from node %s", kind, link.node)

    def _request(self, link: Link, frame: dict[str, Any]) -> None:
        key, sid = str(frame.get("k")), str(frame.get("sid"))
        stats = self._stats(link.node)
        self.bound[sid] = link.node
        if key in self.requests:
            stats.duplicates += 1
            log.info("request %s from node %s was performed before: acked, not performed again", key, link.node)
        else:
            self.requests[key] = time.monotonic()
            stats.requests += 1
            request = str(frame.get("request"))
            data = frame.get("data") if isinstance(frame.get("data"), dict) else {}
            self.by_request[request] = self.by_request.get(request, 0) + 1
            if request == "dial":
                number = str(data.get("number"))
                self.dials[number] = self.dials.get(number, 0) + 1
            assert self.simulator is not None
            self.simulator.handle(sid, request, data)
        link.send({"t": "ack", "k": key})

    def _stats(self, node: str) -> NodeStats:
        return self.stats.setdefault(node, NodeStats())

    # -- housekeeping: resend what was not acked, forget old request keys ------------------------
    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for event in list(self.pending.values()):
                if not event.sent_at or now - event.sent_at >= RESEND_SECONDS:
                    self._send_event(event)
            old = [k for k, at in self.requests.items() if now - at > REQUEST_MEMORY_SECONDS]
            for key in old:
                del self.requests[key]

    async def start(self, _app: web.Application) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self, _app: web.Application) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._queue_flush is not None:
            self._queue_flush.cancel()
        for link in list(self.links.values()):
            link.out.put_nowait(None)
            await link.ws.close()
        if self.simulator is not None:
            self.simulator.close()

    # -- HTTP: health, stats and the simulator's admin routes ------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        """Open to anyone (a probe holds no key): up or not, and the simulator's counts; which
        nodes are connected is in ``/platform/stats``, for the key's holders."""
        ok, detail = self.simulator.health() if self.simulator else (True, "waiting for the first node (its clock)")
        return web.json_response({"status": "ok" if ok else "not ready", "detail": detail},
                                 status=200 if ok else 503)

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every route but ``OPEN_ROUTES`` needs a request signed with the platform key: refused
        here, before its handler runs, so a refused request changes and reveals nothing."""
        if self.verifier is None or request.path in OPEN_ROUTES:
            return await handler(request)
        try:
            request[NONCE] = self.verifier.check(request.headers.get("Authorization"), request.method,
                                                 request.path)
        except Refused as e:
            log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote, e)
            return web.json_response({"error": str(e)}, status=401, headers={"WWW-Authenticate": SCHEME})
        response = await handler(request)
        if not response.prepared:  # a WebSocket's answer went out already: its proof is in welcome
            response.headers[PROOF_HEADER] = proof(self.verifier.key, request[NONCE])
        return response

    async def platform_stats(self, _request: web.Request) -> web.Response:
        return web.json_response({
            "incarnation": self.incarnation, "nodes": {n: asdict(s) for n, s in self.stats.items()},
            "connected": sorted(self.links), "events_pending": len(self.pending),
            "requests_remembered": len(self.requests), "by_request": self.by_request, "dials": self.dials,
        })

    def _require_simulator(self) -> Simulator:
        if self.simulator is None:
            raise web.HTTPServiceUnavailable(text=json.dumps({"error": "no engine node has connected yet"}),
                                             content_type="application/json")
        return self.simulator

    async def get_simulator(self, _request: web.Request) -> web.Response:
        sim = self._require_simulator()
        return web.json_response({"config": sim.config.to_dict(), "state": sim.snapshot()})

    async def put_simulator(self, request: web.Request) -> web.Response:
        try:
            config = SimulatorConfig.from_dict(await request.json())
        except ValueError as e:
            return _error(400, f"simulator settings refused: {e}")
        if config.time_scale != self.scale:
            return _error(400, "time_scale is the clock every node shares; change config/simulator.toml "
                               "and restart the platform and the nodes")
        previous = self.config_path.read_bytes() if self.config_path.is_file() else None
        save_simulator_config(self.config_path, config)  # durable first ...
        try:
            if self.simulator is not None:
                self.simulator.reconfigure(config)  # ... then live; refused: the file is put back
        except ValueError as e:
            if previous is None:
                self.config_path.unlink(missing_ok=True)
            else:
                self.config_path.write_bytes(previous)
            return _error(400, f"simulator settings refused: {e}")
        self.config = config
        state = self.simulator.snapshot() if self.simulator else None
        return web.json_response({"config": config.to_dict(), "state": state})

    async def call_in(self, request: web.Request) -> web.Response:
        """A customer calls in; answered once a node has stored ``callin.arrived`` (bounded)."""
        sim = self._require_simulator()
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("number"), str) \
                or not isinstance(body.get("access_code"), str):
            return _error(400, "give number and access_code as strings")
        seq_before = self._seq
        matched = sim.call_in(body["number"], body["access_code"])
        if matched is None:
            return _error(404, "no callback waits for that access code (unknown or expired)")
        mine = [seq for seq in range(seq_before + 1, self._seq + 1) if seq in self.pending]
        waiters = [self._acked.setdefault(seq, asyncio.get_running_loop().create_future()) for seq in mine]
        if waiters:
            done, _ = await asyncio.wait(waiters, timeout=CALL_IN_WAIT_SECONDS)
            if len(done) < len(waiters):
                log.warning("call-in for %s answered before a node stored it", matched)
            for seq in mine:
                self._acked.pop(seq, None)
        return web.json_response({"matched_session": matched})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


PLATFORM_SERVER: web.AppKey[PlatformServer] = web.AppKey("platform_server", PlatformServer)
NONCE: web.RequestKey[str] = web.RequestKey("platform_nonce")  # of the request's signature
#: Answered without the key: a liveness probe. Everything else reveals or changes the state of
#: the calls (the WebSocket, stats with the numbers dialled, the simulator's settings, call-ins).
OPEN_ROUTES = frozenset({"/health"})


def create_platform_app(config_dir: Path, key: str | None = None) -> web.Application:
    """The platform's routes; ``key`` is the shared ``platform_key`` (None: anyone may connect,
    which the command allows on a loopback address only)."""
    server = PlatformServer(config_dir, key)
    app = web.Application(middlewares=[server.guard])
    app[PLATFORM_SERVER] = server
    app.on_startup.append(server.start)
    app.on_shutdown.append(server.stop)
    app.router.add_get("/platform/ws", server.websocket)
    app.router.add_get("/platform/stats", server.platform_stats)
    app.router.add_get("/health", server.health)
    app.router.add_get("/admin/simulator", server.get_simulator)
    app.router.add_put("/admin/simulator", server.put_simulator)
    app.router.add_post("/admin/simulator/call-in", server.call_in)
    return app
