"""The simulated clock of a cluster node (issue 14): one origin for every node and every restart.

A single engine writes its simulated time with each batch and resumes from it after a restart. In
a cluster no batch writes it (nodes would overwrite each other's): the first node stores the
origin once (``clock_origin``: real time, simulated time and scale at that moment), and every node
derives the same simulated time from it, whatever its start. A changed scale starts a new origin
where the old timeline is now, so simulated time never jumps back.
"""

from __future__ import annotations

import json
import time

from ..storage import Store, TableWrite, UnitOfWork
from ..storage.schema import engine_values

KEY = "clock_origin"
_FIRST_WINS = TableWrite(engine_values, keep_existing=True)


async def simulated_now(store: Store, scale: float, resume_from: float | None = None) -> float:
    """The cluster's simulated time now, at ``scale`` times the wall clock (storing the origin if
    no node did yet: from ``resume_from``, the time a single engine stored, when it is ahead)."""
    now = time.time()
    first = max(now, resume_from or 0.0)
    unit = UnitOfWork()
    unit.add(_FIRST_WINS, [{"key": KEY, "value": json.dumps({"real": now, "sim": first, "scale": scale}),
                            "updated_at": now}])
    await store.write(unit)
    origin = json.loads(await store.get_value(KEY) or "{}")
    sim = origin["sim"] + (now - origin["real"]) * origin["scale"]
    if origin["scale"] != scale:
        await store.put_value(KEY, json.dumps({"real": now, "sim": sim, "scale": scale}), now)
    return sim
