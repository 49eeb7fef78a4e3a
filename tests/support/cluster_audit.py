"""The audit of a cluster's data (``cluster_audit``): no session was run by two nodes at once.

Per session, in write order: the epochs never go back, one node per epoch, the sequence rises, and
each write's (partition, epoch) is a claim of the node that wrote it. Per partition: the claims'
epochs rise. Shared by the proof test and the partition test."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

from tests.support.cluster_processes import Database


async def audit_writes(db: Database) -> dict[str, Any]:
    """Assert the rules above; return the claims' reasons per node and the sessions that moved."""
    claims = await db.rows("SELECT part, epoch, node, incarnation, reason FROM partition_claims ORDER BY id")
    per_part: dict[int, list[int]] = defaultdict(list)
    for c in claims:
        per_part[c["part"]].append(c["epoch"])
    for part, epochs in per_part.items():
        assert epochs == sorted(set(epochs)), (part, epochs)
    claimed = {(c["part"], c["epoch"], c["node"]) for c in claims}
    writes = await db.rows("SELECT id, session_id, part, epoch, node, seq FROM session_writes ORDER BY id")
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for w in writes:
        by_session[w["session_id"]].append(w)
    nodes_per_epoch: dict[tuple[str, int], set[str]] = defaultdict(set)
    for sid, ws in by_session.items():
        epochs = [w["epoch"] for w in ws]
        assert epochs == sorted(epochs), (sid, epochs)
        seqs = [w["seq"] for w in ws]
        assert all(a < b for a, b in pairwise(seqs)), (sid, seqs)
        for w in ws:
            nodes_per_epoch[(sid, w["epoch"])].add(w["node"])
            assert (w["part"], w["epoch"], w["node"]) in claimed, w
    shared = {k: v for k, v in nodes_per_epoch.items() if len(v) > 1}
    assert not shared, list(shared.items())[:5]
    return {"reasons": Counter((c["node"], c["reason"]) for c in claims), "claims": claims, "writes": writes,
            "moved": {sid for sid, ws in by_session.items() if len({w["node"] for w in ws}) > 1}}


async def open_callbacks(db: Database) -> str:
    """What is still open, for a failure message: states, and how many of the open callbacks'
    sessions were written by more than one node (moved in a failover)."""
    states = await db.rows("SELECT state, count(*) AS n FROM callbacks GROUP BY state")
    stuck = await db.rows(
        "SELECT c.id, c.state, (SELECT count(DISTINCT w.node) FROM session_writes w "
        "WHERE w.session_id = c.session_id) AS nodes FROM callbacks c WHERE c.state <> 'COMPLETED'")
    moved = sum(1 for r in stuck if r["nodes"] > 1)
    examples = []
    for r in stuck[:5]:
        nodes = await db.rows("SELECT w.node, w.epoch FROM session_writes w JOIN callbacks c ON c.session_id = "
                              "w.session_id WHERE c.id = :id ORDER BY w.id", id=r["id"])
        path = [f"{n['node']}@{n['epoch']}" for n in nodes]
        runs = [p for i, p in enumerate(path) if i == 0 or p != path[i - 1]]
        examples.append(f"{r['id']} {r['state']} written by {runs}; {await session_detail(db, r['id'])}")
    return (f"{ {r['state']: r['n'] for r in states} }; of the {len(stuck)} open ones, {moved} have sessions written "
            f"by more than one node; e.g. {examples}")


async def session_detail(db: Database, callback_id: str) -> str:
    """A stuck callback's session as stored: status, active states, what waits in its queues,
    pending delayed sends, its inbox and outbox rows, and the last events it recorded."""
    found = await db.rows("SELECT s.id, s.snapshot FROM sessions s JOIN callbacks c ON c.session_id = s.id "
                          "WHERE c.id = :id", id=callback_id)
    if not found:
        return "no session row"
    sid, state = found[0]["id"], json.loads(found[0]["snapshot"])
    inbox = await db.rows("SELECT event, taken_epoch FROM inbox WHERE session_id = :sid", sid=sid)
    outbox = await db.rows("SELECT kind FROM outbox WHERE session_id = :sid", sid=sid)
    events = await db.rows("SELECT name FROM callback_events WHERE callback_id = :id ORDER BY id DESC LIMIT 4",
                           id=callback_id)
    queued = [e.get("name") for e in state.get("external", [])]
    sends = [p.get("name") for p in state.get("pending", [])]
    return (f"session {sid[:8]} {state.get('status')} in {state.get('configuration')}, queued {queued}, "
            f"sends {sends}"
            f"; inbox {[(json.loads(r['event']).get('name'), r['taken_epoch']) for r in inbox]}"
            f"; outbox {[r['kind'] for r in outbox]}; last events {[r['name'] for r in events][::-1]}")
