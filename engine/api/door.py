"""The door every request passes, as one middleware: the key and role check (``auth``), the storage
gate (``health``), JSON errors (``errors``), the 503 of an unsaved configuration write (``admin``)
and the access line with the HTTP metrics (``access_log``), in that order from the inside out.

One middleware and not one per concern: each middleware is a coroutine layer that every request
goes through (and aiohttp adds a layer of its own to any app that has one), so five layers cost a
create request more than all the checks they made. Each concern stays in its own module, as a plain
function the door calls.
"""

from __future__ import annotations

import time

from aiohttp import web

from ..atomic_file import SaveError
from .access_log import log_request
from .admin import unsaved_is_503
from .auth import key_refusal
from .errors import Handler, answer_for
from .health import storage_refusal


@web.middleware
async def door(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500  # what the client gets when an exception escapes (a cancelled request's task)
    try:
        try:
            response = key_refusal(request)  # never `or`: an answer with no state is falsy
            if response is None:
                response = storage_refusal(request)
            if response is None:
                response = await handler(request)
        except Exception as e:  # a SaveError is a 503 wherever it came from, the checks included
            answer = answer_for(request, unsaved_is_503(request, e) if isinstance(e, SaveError) else e)
            if answer is None:
                raise  # a redirect and the like: the client gets it as it is
            response = answer
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        log_request(request, status, time.perf_counter() - started)
