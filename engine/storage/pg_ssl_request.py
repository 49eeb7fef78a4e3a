"""asyncpg's SSL request, made safe to abandon: a connect cancelled mid-way logs no ERROR.

With ``sslmode`` ``prefer`` (asyncpg's default), ``require`` or stricter, asyncpg opens each
connection (and each side connection that cancels a query) by sending PostgreSQL's SSLRequest
through a small protocol whose ``on_data`` future receives the server's one-byte answer. If the
connect is cancelled (its ``timeout``, a ``wait_for`` around it, a task stopped) after the TCP
connection is made but before ``loop.create_connection`` has returned it, asyncio closes the
transport, ``connection_lost`` sets ``ConnectionError('unexpected connection_lost() call')`` on that
future, and nobody is left to await it: when it is collected, asyncio's default exception handler
logs "Future exception was never retrieved" at ERROR, for a failure that was already handled (the
connect raised ``CancelledError`` or ``TimeoutError`` to its caller, which retries). asyncpg 0.32.0
(the newest release) still does this (``asyncpg/connect_utils.py``: ``TLSUpgradeProto`` and
``_create_ssl_connection``).

``observe_ssl_answers`` makes that future's outcome observed as soon as it is set: a connect that
is still waiting for the answer gets the exception exactly as before (awaiting it raises it); one
that was abandoned no longer leaves an orphan for the garbage collector. SSL itself is untouched:
``prefer`` still tries SSL first and ``require`` still insists on it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


def observe_outcome(future: asyncio.Future[Any]) -> None:
    """Mark a finished future's exception as retrieved (its awaiter, if any, still gets it)."""
    if not future.cancelled():
        future.exception()


def observe_ssl_answers() -> bool:
    """Install (once) the SSL request protocol whose answer future is always observed.

    Returns whether it is in place: False when asyncpg is not installed (SQLite only) or its
    internals changed shape (then nothing is changed, and a warning says so)."""
    try:
        import asyncpg
        from asyncpg import connect_utils
    except ImportError:
        return False
    current = getattr(connect_utils, "TLSUpgradeProto", None)
    if getattr(current, "observes_ssl_answer", False):
        return True
    if not isinstance(current, type) or not hasattr(connect_utils, "_create_ssl_connection"):
        log.warning("asyncpg's SSL request protocol is not where it was (asyncpg %s): a connect cancelled "
                    "during SSL negotiation may log 'Future exception was never retrieved'",
                    getattr(asyncpg, "__version__", "?"))
        return False

    class ObservedSslAnswer(current):
        """asyncpg's SSL request protocol, its answer future observed whoever awaits it."""

        observes_ssl_answer = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            answer = getattr(self, "on_data", None)
            if isinstance(answer, asyncio.Future):
                answer.add_done_callback(observe_outcome)

    connect_utils.TLSUpgradeProto = ObservedSslAnswer
    return True
