"""The embedded contact-center simulator: queues, agents, a dialer and call-in matching in memory.

It implements ``Platform`` (see ``adapter.py`` for the request/event protocol) on the engine's one
clock, so a ``ScaledClock`` runs a day of traffic in seconds. Everything is timer driven: an idle
simulator costs nothing, and nothing sleeps or polls.

Model:

- A *virtual interaction* (vixn) is a callback waiting in a queue. The waiting list is ordered by
  priority (higher first), then arrival. Only interactions that asked for a target (``target.find``)
  compete for agents; the first of them gets the longest-idle free agent, which is *reserved*.
- ``route`` connects the reserved agent (or any free agent named directly); after ``route_seconds``
  the call is up (``route.done``), after the queue's handle time it ends (``call.ended``), the
  handle time enters the queue's history and the agent serves the next seeker.
- ``agent.release`` gives a reserved agent back unused; its interaction keeps its place at the
  head of the queue but stops seeking until it asks again. ``vixn.cancel`` leaves the queue.
- EWT (SPEC 7) = average handle time of the last 32 calls (``default_handle_seconds`` until there
  is history) x position / staffed agents; -1 when no agent is staffed.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import logging
import random
import re
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.scxml.clock import Clock

from .adapter import OUTCOME_CODES, OUTCOMES, UNKNOWN_EWT, Deliver, Position, QueueListener, QueueStats
from .config import DialRule, QueueConfig, SimulatorConfig, load_simulator_config

__all__ = ["Simulator", "SimulatorConfig", "load_simulator_config"]

log = logging.getLogger("engine.platform.simulator")

HISTORY = 32  # handle times kept per queue for EWT
FIRST_EXTENSION = 7001
SWITCH = "SIM_Switch"

FREE, RESERVED, BUSY = "free", "reserved", "busy"
WAITING = "waiting"

_Key = tuple[int, int, str]  # (-priority, arrival, vixn_id): the order of a waiting list


class RequestError(Exception):
    """A request a flow got wrong; answered with ``platform.error``, never raised to the caller."""


@dataclass(eq=False, slots=True)
class Agent:
    agent_id: str
    extension: str
    queue: str
    state: str = FREE
    session_id: str | None = None  # None while free, or once the session was dropped mid-call
    vixn_id: str | None = None
    request_id: Any = None  # the route request's id, echoed by route.done and call.ended
    free_since: float = 0.0
    handle_seconds: float = 0.0
    retiring: bool = False  # staffing was reduced while it worked: it leaves when its call ends
    timer: Any = None
    rank: int = 0  # order of joining its queue: ties of free_since go to the earlier one

    def view(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id, "extension": self.extension, "state": self.state,
                "session_id": self.session_id, "vixn_id": self.vixn_id, "retiring": self.retiring}


@dataclass(eq=False, slots=True)
class Vixn:
    vixn_id: str
    session_id: str
    queue: str
    priority: int
    arrival: int
    created: float
    state: str = WAITING  # waiting -> reserved -> (routed: forgotten)
    seeking: bool = False
    find_request_id: Any = None
    agent_id: str | None = None
    # Its place in the waiting and seekers lists: made once, so both lists hold the one tuple
    # (priority and arrival never change).
    key: _Key = field(init=False)

    def __post_init__(self) -> None:
        self.key = (-self.priority, self.arrival, self.vixn_id)


@dataclass(eq=False, slots=True)
class CallIn:
    code: str
    session_id: str
    number: str
    vixn_id: str | None
    expires: int
    request_id: Any


@dataclass(eq=False)
class QueueState:
    """One virtual queue at run time."""

    name: str
    config: QueueConfig
    agents: dict[str, Agent] = field(default_factory=dict)
    waiting: list[_Key] = field(default_factory=list)
    seekers: list[_Key] = field(default_factory=list)
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    _index: dict[str, int] | None = None  # vixn_id -> position, rebuilt lazily after a change
    # Free agents by (free_since, rank): entries go stale when the agent is taken, retires or
    # leaves, and are dropped when they reach the top. Finding the longest-idle agent scanned
    # every agent of the queue for each call served.
    _free: list[tuple[float, int, Agent]] = field(default_factory=list)
    _joined: int = 0

    def insert(self, vixn: Vixn, seeking: bool = False) -> None:
        bisect.insort(self.seekers if seeking else self.waiting, vixn.key)
        if not seeking:
            self._index = None

    def discard(self, vixn: Vixn) -> None:
        for lst in (self.waiting, self.seekers):
            key = vixn.key
            i = bisect.bisect_left(lst, key)
            if i < len(lst) and lst[i] == key:
                del lst[i]
        self._index = None

    def position(self, vixn_id: str) -> int | None:
        """1-based; a full re-evaluation after a change costs one pass over the list, not n."""
        if self._index is None:
            self._index = {key[2]: i for i, key in enumerate(self.waiting, 1)}
        return self._index.get(vixn_id)

    def staffed(self) -> list[Agent]:
        return [a for a in self.agents.values() if not a.retiring]

    def join(self, agent: Agent) -> None:
        self._joined += 1
        agent.rank = self._joined
        self.agents[agent.agent_id] = agent
        self.offer(agent)

    def offer(self, agent: Agent) -> None:
        """``agent`` is free from ``agent.free_since``."""
        heapq.heappush(self._free, (agent.free_since, agent.rank, agent))
        if len(self._free) > 4 * len(self.agents) + 64:  # agents taken by name leave stale entries
            self._free = [(a.free_since, a.rank, a) for a in self.agents.values()
                          if a.state == FREE and not a.retiring]
            heapq.heapify(self._free)

    def free_agent(self) -> Agent | None:
        """The longest-idle free agent, so work spreads over the team."""
        free = self._free
        while free:
            since, _rank, agent = free[0]
            if (agent.state == FREE and not agent.retiring and agent.free_since == since
                    and self.agents.get(agent.agent_id) is agent):
                return agent
            heapq.heappop(free)
        return None

    def avg_handle(self) -> float | None:
        return sum(self.history) / len(self.history) if self.history else None


class Simulator:
    """The embedded ``Platform``; one per engine process."""

    durable = False  # all of it lives in this process
    def __init__(self, config: SimulatorConfig, clock: Clock, deliver: Deliver | None = None,
                 rng: random.Random | None = None):
        config.validate()
        self.config = config
        self.clock = clock
        self.rng = rng if rng is not None else random.Random(config.seed)
        self._sinks: list[Deliver] = [deliver] if deliver is not None else []  # where events go
        self._queues: dict[str, QueueState] = {}
        self._agents: dict[str, Agent] = {}
        self._extensions: dict[str, str] = {}
        self._vixns: dict[str, Vixn] = {}
        # session -> its vixn ids (a tuple: nearly always one, and a list cost twice the memory)
        self._by_session: dict[str, tuple[str, ...]] = {}
        # session -> the agents reserved for it or in a call with it: ``drop`` scanned every agent
        # of every queue for each callback that ended
        self._engaged: dict[str, list[Agent]] = {}
        self._timers: dict[str, dict[int, Any]] = {}  # session -> token -> timer handle
        self._tokens = itertools.count(1)
        self._arrivals = itertools.count(1)
        # Interaction ids: a random prefix per simulator and the arrival serial (uuid4 was a tenth
        # of the simulator's time); interactions do not outlive the simulator that made them.
        self._vixn_prefix = secrets.token_hex(4)
        self._dials: dict[str, int] = {}  # number -> dials so far (for scripted sequences)
        self._rules: list[tuple[re.Pattern[str], DialRule]] = []
        self._callins: dict[str, CallIn] = {}
        self._callin_of: dict[str, str] = {}  # session -> its valid access code
        self._listeners: list[QueueListener] = []
        self._dirty: dict[str, None] = {}  # queues changed during the current operation, in order
        self._outer: list[bool] = []  # per operation in progress: whether the one around it buffered
        self._buffering = False
        # Group changes so listeners hear about each changed queue once, after state is consistent;
        # the buffered one also holds back the events it raises until a later loop turn.
        self._operation = _Operation(self, buffer=False)
        self._buffered_operation = _Operation(self, buffer=True)
        self._outbox: list[tuple[str, str, dict[str, Any]]] = []
        self._flush_handle: Any = None
        self._closed = False
        self._handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "vixn.create": self._vixn_create,
            "vixn.cancel": self._vixn_cancel,
            "target.find": self._target_find,
            "agent.release": self._agent_release,
            "dial": self._dial,
            "treatment.play": self._treatment,
            "route": self._route,
            "callin.register": self._callin_register,
        }
        with self._operation:
            self._apply(config)

    # ------------------------------------------------------------------ Platform API
    def attach(self, deliver: Deliver) -> Callable[[], None]:
        """Raise this platform's events through ``deliver`` too (a session host joining); the
        callable returned detaches it again."""
        self._sinks.append(deliver)

        def detach() -> None:
            if deliver in self._sinks:
                self._sinks.remove(deliver)

        return detach

    def _deliver(self, sid: str, name: str, data: dict[str, Any]) -> None:
        if not self._sinks:
            log.warning("platform event %s for session %s dropped: no session host is attached", name, sid)
        for sink in self._sinks:
            sink(sid, name, data)

    def handle(self, session_id: str, request: str, data: dict[str, Any]) -> None:
        """Answers are delivered on a later loop turn, never inside the caller's own step."""
        with self._buffered_operation:
            if not isinstance(data, dict):
                self._error(session_id, request, {}, "request data must be an object")
                return
            handler = self._handlers.get(request)
            if handler is None:
                self._error(session_id, request, data, "unknown request")
                return
            try:
                handler(session_id, data)
            except RequestError as e:
                self._error(session_id, request, data, str(e))

    def queue_stats(self, queue: str) -> QueueStats:
        q = self._queues[queue]
        staffed = q.staffed()
        free = sum(1 for a in staffed if a.state == FREE)
        return QueueStats(
            queue=queue, waiting=len(q.waiting), agents_staffed=len(staffed),
            agents_busy=len(staffed) - free, agents_free=free, avg_handle_seconds=q.avg_handle(),
            ewt_seconds=self._ewt(q, len(q.waiting) + 1),
        )

    def position(self, session_id: str) -> Position | None:
        for vixn_id in self._by_session.get(session_id, ()):
            vixn = self._vixns[vixn_id]
            if vixn.state != WAITING:
                continue
            q = self._queues[vixn.queue]
            pos = q.position(vixn_id)
            if pos is not None:
                return Position(queue=q.name, position=pos, total_waiting=len(q.waiting),
                                ewt_seconds=self._ewt(q, pos))
        return None

    def call_in(self, number: str, access_code: str) -> str | None:
        code = str(access_code).strip()
        entry = self._callins.get(code)
        if entry is None:
            return None
        self._forget_callin(entry)
        if self.clock.now() > entry.expires:
            return None
        data: dict[str, Any] = {"number": number, "access_code": code}
        if entry.vixn_id is not None:
            data["vixn_id"] = entry.vixn_id
        self._emit(entry.session_id, "callin.arrived", data, entry.request_id)
        return entry.session_id

    def drop(self, session_id: str) -> None:
        with self._operation:
            for handle in self._timers.pop(session_id, {}).values():
                handle.cancel()
            if self._outbox:
                self._outbox = [item for item in self._outbox if item[0] != session_id]
            for vixn_id in self._by_session.get(session_id, ()):
                self._remove_vixn(self._vixns[vixn_id])
            self._by_session.pop(session_id, None)
            code = self._callin_of.get(session_id)
            if code is not None:
                self._forget_callin(self._callins[code])
            for agent in self._engaged.pop(session_id, ()):
                if agent.session_id != session_id:
                    continue
                if agent.state == RESERVED:
                    self._free_agent(agent)
                else:  # mid-call: the call runs to its end, it just tells nobody
                    agent.session_id = None

    def add_listener(self, fn: QueueListener) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: QueueListener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    # ------------------------------------------------------------------ administration
    @property
    def queues(self) -> list[str]:
        return list(self._queues)

    def reconfigure(self, config: SimulatorConfig) -> None:
        """Apply new staffing, handle times and rules at run time (``time_scale`` is only stored).

        Removing a queue that still has interactions or agents at work raises ValueError and
        changes nothing.
        """
        config.validate()
        for name, q in self._queues.items():
            if name in config.queues:
                continue
            in_use = sum(1 for a in q.agents.values() if a.state != FREE)
            vixns = sum(1 for v in self._vixns.values() if v.queue == name)
            if in_use or vixns:
                raise ValueError(f"queues.{name}: cannot remove a queue with {vixns} interaction(s) "
                                 f"and {in_use} agent(s) at work")
        with self._operation:
            if config.seed is not None and config.seed != self.config.seed:
                self.rng.seed(config.seed)
            self.config = config
            self._apply(config)

    def snapshot(self) -> dict[str, Any]:
        """Queues, agents, waiting interactions and statistics, JSON-able, for the admin API."""
        queues: dict[str, Any] = {}
        for name, q in self._queues.items():
            stats = self.queue_stats(name)
            waiting = []
            for i, key in enumerate(q.waiting, 1):
                vixn = self._vixns[key[2]]
                waiting.append({"vixn_id": vixn.vixn_id, "session_id": vixn.session_id, "position": i,
                                "priority": vixn.priority, "seeking": vixn.seeking, "since": vixn.created,
                                "ewt_seconds": self._ewt(q, i)})
            queues[name] = {
                "agents_configured": q.config.agents, "handle_seconds": q.config.handle_seconds,
                "handle_jitter": q.config.handle_jitter, "waiting": stats.waiting,
                "agents_staffed": stats.agents_staffed, "agents_busy": stats.agents_busy,
                "agents_free": stats.agents_free, "avg_handle_seconds": stats.avg_handle_seconds,
                "ewt_seconds": stats.ewt_seconds, "history": list(q.history),
                "agents": [a.view() for a in q.agents.values()], "interactions": waiting,
                "reserved": [v.vixn_id for v in self._vixns.values() if v.queue == name and v.state == RESERVED],
            }
        return {
            "now": self.clock.now(), "time_scale": self.config.time_scale, "queues": queues,
            "callins_valid": sum(1 for c in self._callins.values() if c.expires >= self.clock.now()),
            "config": self.config.to_dict(),
        }

    def waiting(self, queue: str) -> list[tuple[str, int, float]]:
        """(session, position, EWT) of every interaction waiting in ``queue``, in queue order: what
        the platform process sends its nodes so they answer positions without asking."""
        q = self._queues[queue]
        return [(self._vixns[key[2]].session_id, i, self._ewt(q, i)) for i, key in enumerate(q.waiting, 1)]

    def health(self) -> tuple[bool, str]:
        """The simulator runs in this process: ready while it is open and has a queue."""
        if self._closed:
            return False, "the simulator is stopped"
        if not self._queues:
            return False, "the simulator has no virtual queue configured"
        return True, f"simulator: {len(self._queues)} queues, {len(self._agents)} agents"

    def close(self) -> None:
        """Cancel every timer (engine shutdown, end of a test)."""
        self._closed = True
        for timers in self._timers.values():
            for handle in timers.values():
                handle.cancel()
        self._timers.clear()
        for agent in self._agents.values():
            if agent.timer is not None:
                agent.timer.cancel()
                agent.timer = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._outbox.clear()

    # ------------------------------------------------------------------ requests
    def _vixn_create(self, sid: str, data: dict[str, Any]) -> None:
        q = self._queue_of(data)
        priority = _int(data.get("priority", 0), "priority")
        arrival = next(self._arrivals)
        vixn = Vixn(vixn_id=f"vx-{self._vixn_prefix}{arrival:08x}", session_id=sid, queue=q.name, priority=priority,
                    arrival=arrival, created=self.clock.now())
        self._vixns[vixn.vixn_id] = vixn
        self._by_session[sid] = (*self._by_session.get(sid, ()), vixn.vixn_id)
        q.insert(vixn)
        self._touch(q.name)
        self._reply(sid, "vixn.created", data, vixn_id=vixn.vixn_id, queue=q.name)

    def _vixn_cancel(self, sid: str, data: dict[str, Any]) -> None:
        vixn = self._own_vixn(sid, data)
        self._remove_vixn(vixn)
        self._reply(sid, "vixn.cancelled", data, vixn_id=vixn.vixn_id)

    def _target_find(self, sid: str, data: dict[str, Any]) -> None:
        vixn = self._own_vixn(sid, data)
        if vixn.state == RESERVED:  # asked again: the same agent is still held for it
            self._reply(sid, "target.found", data, **self._target(vixn, self._agents[vixn.agent_id]))  # type: ignore[index]
            return
        q = self._queues[vixn.queue]
        vixn.find_request_id = data.get("request_id")
        if not vixn.seeking:
            vixn.seeking = True
            q.insert(vixn, seeking=True)
        self._serve(q)

    def _agent_release(self, sid: str, data: dict[str, Any]) -> None:
        agent = self._agent_of(data)
        if agent.state != RESERVED or agent.session_id != sid:
            raise RequestError(f"agent {agent.agent_id} is not reserved by this session")
        vixn = self._vixns.get(agent.vixn_id or "")
        if vixn is not None:  # back to the head of the queue, no longer asking for an agent
            vixn.state, vixn.agent_id, vixn.seeking = WAITING, None, False
            self._queues[vixn.queue].insert(vixn)
        self._free_agent(agent)
        self._reply(sid, "agent.released", data, agent_id=agent.agent_id)

    def _dial(self, sid: str, data: dict[str, Any]) -> None:
        number = _text(data, "number")
        attempt = data.get("attempt", 1)
        if not isinstance(attempt, bool):
            try:
                attempt = int(attempt)
            except (TypeError, ValueError):
                pass  # echoed as given
        outcome = self._outcome(number)
        result = {"number": number, "attempt": attempt, "result": outcome, "code": OUTCOME_CODES[outcome]}
        self._later(sid, self.config.ring_seconds, self._reply, sid, "dial.result", data, result)

    def _treatment(self, sid: str, data: dict[str, Any]) -> None:
        seconds = data.get("seconds")
        seconds = self.config.treatment_seconds if seconds is None else _seconds(seconds, "seconds")
        result: dict[str, Any] = {"seconds": seconds}
        if data.get("name") is not None:
            result["name"] = data["name"]
        self._later(sid, seconds, self._reply, sid, "treatment.done", data, result)

    def _route(self, sid: str, data: dict[str, Any]) -> None:
        agent = self._agent_of(data)
        if agent.state == RESERVED and agent.session_id == sid:
            vixn = self._vixns.get(agent.vixn_id or "")
            if vixn is not None:  # served: it leaves the queue for good
                self._forget_vixn(vixn)
        elif agent.state == FREE and not agent.retiring:
            self._engage(agent, sid)  # routed straight to a named free agent
        else:
            raise RequestError(f"agent {agent.agent_id} is not available to this session")
        agent.state, agent.vixn_id, agent.request_id = BUSY, None, data.get("request_id")
        self._touch(agent.queue)
        agent.timer = self.clock.call_later(self.config.route_seconds, self._agent_timer, agent, self._connected)

    def _callin_register(self, sid: str, data: dict[str, Any]) -> None:
        number = _text(data, "number")
        vixn_id = data.get("vixn_id")
        now = self.clock.now()
        for entry in [c for c in self._callins.values() if c.expires < now]:
            self._forget_callin(entry)
        old = self._callin_of.get(sid)
        if old is not None:  # one valid code per session: a new registration replaces it
            self._forget_callin(self._callins[old])
        code = f"{secrets.randbelow(1_000_000):06d}"
        while code in self._callins:
            code = f"{secrets.randbelow(1_000_000):06d}"
        expires = int(now + self.config.callin_valid_seconds)
        entry = CallIn(code, sid, number, None if vixn_id is None else str(vixn_id), expires, data.get("request_id"))
        self._callins[code] = entry
        self._callin_of[sid] = code
        self._reply(sid, "callin.registered", data, access_number=self.config.access_number,
                    access_code=code, expires=expires)
        if self.config.auto_callin_seconds > 0:
            self._later(sid, self.config.auto_callin_seconds, self.call_in, number, code)

    # ------------------------------------------------------------------ agents and queues
    def _serve(self, q: QueueState) -> None:
        """Give free agents to the first seekers, in queue order."""
        while q.seekers:
            agent = q.free_agent()
            if agent is None:
                return
            vixn = self._vixns[q.seekers[0][2]]
            q.discard(vixn)
            vixn.state, vixn.seeking, vixn.agent_id = RESERVED, False, agent.agent_id
            agent.state, agent.vixn_id = RESERVED, vixn.vixn_id
            self._engage(agent, vixn.session_id)
            self._touch(q.name)
            self._emit(vixn.session_id, "target.found", self._target(vixn, agent), vixn.find_request_id)

    def _target(self, vixn: Vixn, agent: Agent) -> dict[str, Any]:
        """The ``target.found`` data; ``target`` has the shape of the seed's ``c_target``."""
        return {
            "vixn_id": vixn.vixn_id, "queue": vixn.queue, "agent_id": agent.agent_id,
            "agent_extension": agent.extension,
            "target": {
                "agent": agent.agent_id, "dn": agent.extension, "id": vixn.queue,
                "place": f"Place_{agent.extension}", "resource": agent.extension, "return": "target",
                "stat_value": "0", "switch": SWITCH, "type": "GA", "vq": vixn.queue,
            },
        }

    def _connected(self, agent: Agent) -> None:
        """The routed call is up; it lasts the queue's handle time."""
        if agent.session_id is not None:
            self._emit(agent.session_id, "route.done",
                       {"agent_id": agent.agent_id, "agent_extension": agent.extension}, agent.request_id)
        conf = self._queues[agent.queue].config
        seconds = conf.handle_seconds
        if conf.handle_jitter > 0:
            seconds = max(0.0, self.rng.uniform(seconds - conf.handle_jitter, seconds + conf.handle_jitter))
        agent.handle_seconds = seconds
        agent.timer = self.clock.call_later(seconds, self._agent_timer, agent, self._call_ended)

    def _call_ended(self, agent: Agent) -> None:
        q = self._queues[agent.queue]
        q.history.append(agent.handle_seconds)
        if agent.session_id is not None:
            self._emit(agent.session_id, "call.ended",
                       {"agent_id": agent.agent_id, "handle_seconds": agent.handle_seconds}, agent.request_id)
        self._free_agent(agent)

    def _free_agent(self, agent: Agent) -> None:
        self._disengage(agent)
        agent.state, agent.vixn_id, agent.request_id = FREE, None, None
        agent.free_since = self.clock.now()
        if agent.timer is not None:
            agent.timer.cancel()
            agent.timer = None
        q = self._queues[agent.queue]
        if agent.retiring:
            del q.agents[agent.agent_id]
            del self._agents[agent.agent_id]
        else:
            q.offer(agent)
        self._touch(q.name)
        self._serve(q)

    def _engage(self, agent: Agent, sid: str) -> None:
        self._disengage(agent)
        agent.session_id = sid
        self._engaged.setdefault(sid, []).append(agent)

    def _disengage(self, agent: Agent) -> None:
        sid, agent.session_id = agent.session_id, None
        agents = self._engaged.get(sid) if sid is not None else None
        if agents is not None and agent in agents:
            agents.remove(agent)
            if not agents:
                del self._engaged[sid]  # type: ignore[arg-type]

    def _remove_vixn(self, vixn: Vixn) -> None:
        """Leave the queue; a reserved agent goes back to work."""
        self._forget_vixn(vixn)
        if vixn.state == RESERVED and vixn.agent_id is not None:
            agent = self._agents.get(vixn.agent_id)
            if agent is not None and agent.state == RESERVED and agent.vixn_id == vixn.vixn_id:
                self._free_agent(agent)

    def _forget_vixn(self, vixn: Vixn) -> None:
        q = self._queues[vixn.queue]
        q.discard(vixn)
        self._vixns.pop(vixn.vixn_id, None)
        ids = self._by_session.get(vixn.session_id)
        if ids is not None and vixn.vixn_id in ids:
            rest = tuple(i for i in ids if i != vixn.vixn_id)
            if rest:
                self._by_session[vixn.session_id] = rest
            else:
                del self._by_session[vixn.session_id]
        self._touch(q.name)

    def _forget_callin(self, entry: CallIn) -> None:
        self._callins.pop(entry.code, None)
        if self._callin_of.get(entry.session_id) == entry.code:
            del self._callin_of[entry.session_id]

    def _ewt(self, q: QueueState, position: int) -> float:
        staffed = len(q.staffed())
        if staffed == 0:
            return UNKNOWN_EWT
        avg = q.avg_handle()
        return (self.config.default_handle_seconds if avg is None else avg) * position / staffed

    def _apply(self, config: SimulatorConfig) -> None:
        """Bring queues, staffing and rules in line with ``config``."""
        self._rules = [(re.compile(rule.pattern), rule) for rule in config.dial_rules]
        for name in [n for n in self._queues if n not in config.queues]:
            for agent in self._queues.pop(name).agents.values():
                self._agents.pop(agent.agent_id, None)
        for name, qconf in config.queues.items():
            q = self._queues.get(name)
            if q is None:
                q = self._queues[name] = QueueState(name, qconf)
            q.config = qconf
            self._staff(q, qconf.agents)
            self._touch(name)
            self._serve(q)

    def _staff(self, q: QueueState, target: int) -> None:
        """Add agents, or log off free ones first and let busy ones finish their call."""
        staffed = q.staffed()
        for agent in q.agents.values():  # staffing up: those about to leave stay instead
            if len(staffed) >= target:
                break
            if agent.retiring:
                agent.retiring = False
                staffed.append(agent)
        n = 1
        while len(staffed) < target:
            agent_id = f"{q.name}.agent{n}"
            n += 1
            if agent_id in q.agents:
                continue
            extension = self._extensions.get(agent_id)
            if extension is None:
                extension = self._extensions[agent_id] = str(FIRST_EXTENSION + len(self._extensions))
            agent = Agent(agent_id, extension, q.name, free_since=self.clock.now())
            q.join(agent)
            self._agents[agent_id] = agent
            staffed.append(agent)
        excess = len(staffed) - target
        if excess <= 0:
            return
        # Free agents leave first (the most recently added first), then busy ones after their call.
        for agent in sorted(reversed(staffed), key=lambda a: a.state != FREE)[:excess]:
            if agent.state == FREE:
                del q.agents[agent.agent_id]
                del self._agents[agent.agent_id]
            else:
                agent.retiring = True

    def _outcome(self, number: str) -> str:
        count = self._dials.get(number, 0)
        self._dials[number] = count + 1
        for pattern, rule in self._rules:
            if not pattern.search(number):
                continue
            if rule.sequence is not None:
                return rule.sequence[min(count, len(rule.sequence) - 1)]
            probs = rule.probabilities or {}
            weights = [(o, probs[o]) for o in OUTCOMES if probs.get(o, 0) > 0]
            draw = self.rng.random() * sum(w for _, w in weights)
            for outcome, weight in weights:
                draw -= weight
                if draw < 0:
                    return outcome
            return weights[-1][0]
        return self.config.default_outcome

    # ------------------------------------------------------------------ plumbing
    def _queue_of(self, data: dict[str, Any]) -> QueueState:
        name = _text(data, "queue")
        q = self._queues.get(name)
        if q is None:
            raise RequestError(f"unknown queue {name!r}")
        return q

    def _own_vixn(self, sid: str, data: dict[str, Any]) -> Vixn:
        vixn_id = _text(data, "vixn_id")
        vixn = self._vixns.get(vixn_id)
        if vixn is None or vixn.session_id != sid:
            raise RequestError(f"unknown interaction {vixn_id!r}")
        return vixn

    def _agent_of(self, data: dict[str, Any]) -> Agent:
        agent_id = _text(data, "agent_id")
        agent = self._agents.get(agent_id)
        if agent is None:
            raise RequestError(f"unknown agent {agent_id!r}")
        return agent

    def _reply(self, sid: str, name: str, request: dict[str, Any], result: dict[str, Any] | None = None,
               **fields: Any) -> None:
        data = dict(result or {})
        data.update(fields)
        self._emit(sid, name, data, request.get("request_id"))

    def _error(self, sid: str, request: str, data: dict[str, Any], reason: str) -> None:
        log.info("platform request %r of session %s refused: %s", request, sid, reason)
        self._emit(sid, "platform.error", {"request": request, "reason": reason}, data.get("request_id"))

    def _emit(self, sid: str, name: str, data: dict[str, Any], request_id: Any = None) -> None:
        if request_id is not None:
            data["request_id"] = request_id
        if self._buffering:
            self._outbox.append((sid, name, data))
            if self._flush_handle is None:
                self._flush_handle = self.clock.call_soon(self._flush)
            return
        try:
            self._deliver(sid, name, data)
        except Exception:
            log.exception("delivering %s to session %s failed", name, sid)

    def _flush(self) -> None:
        self._flush_handle = None
        outbox, self._outbox = self._outbox, []
        for sid, name, data in outbox:
            try:
                self._deliver(sid, name, data)
            except Exception:
                log.exception("delivering %s to session %s failed", name, sid)

    def _later(self, sid: str, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """A timer owned by a session, so ``drop`` can cancel it."""
        token = next(self._tokens)
        handle = self.clock.call_later(delay, self._session_timer, sid, token, fn, args)
        self._timers.setdefault(sid, {})[token] = handle

    def _session_timer(self, sid: str, token: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        timers = self._timers.get(sid)
        if timers is None or timers.pop(token, None) is None:
            return
        if not timers:
            del self._timers[sid]
        with self._operation:
            fn(*args)

    def _agent_timer(self, agent: Agent, fn: Callable[[Agent], None]) -> None:
        agent.timer = None
        if self._agents.get(agent.agent_id) is not agent:
            return
        with self._operation:
            fn(agent)

    def _touch(self, queue: str) -> None:
        self._dirty[queue] = None

    def _operation_done(self) -> None:
        """The outermost operation ended: tell the listeners of each queue it changed."""
        dirty, self._dirty = list(self._dirty), {}
        for queue in dirty:
            if queue not in self._queues:
                continue
            for listener in list(self._listeners):
                try:
                    listener(queue)
                except Exception:
                    log.exception("queue listener failed for %s", queue)


class _Operation:
    """``Simulator._operation`` and ``_buffered_operation``: one plain, reentrant context manager
    of each kind per simulator, since every request and timer of every callback runs in one (a
    generator-based one cost more than most requests themselves; one made per use, a tenth of
    the simulator's own time)."""

    __slots__ = ("_buffer", "_sim")

    def __init__(self, sim: Simulator, buffer: bool):
        self._sim = sim
        self._buffer = buffer

    def __enter__(self) -> None:
        sim = self._sim
        outer = sim._buffering
        sim._outer.append(outer)
        sim._buffering = outer or self._buffer

    def __exit__(self, *exc: object) -> None:
        sim = self._sim
        outers = sim._outer
        sim._buffering = outers.pop()
        if not outers and sim._dirty:
            sim._operation_done()


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None or value == "":
        raise RequestError(f"missing {key}")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RequestError(f"{key} must be text, not {type(value).__name__}")
    return str(value)


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise RequestError(f"{key} must be an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RequestError(f"{key} must be an integer, not {value!r}") from None
    if isinstance(value, float) and number != value:
        raise RequestError(f"{key} must be an integer, not {value!r}")
    return number


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise RequestError(f"{key} must be a number of seconds")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{key} must be a number of seconds, not {value!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise RequestError(f"{key} must be a number of seconds >= 0, not {value!r}")
    return seconds
