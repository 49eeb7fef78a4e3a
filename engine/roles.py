"""The role table (SPEC 8): which role may call which part of the HTTP API, as data in one place.

A request is allowed when one grant of its key's role names an area holding the request's path
and the request's method. What no grant names is refused (403), so an endpoint added later is
the administrator's until a grant here says otherwise. Areas are path prefixes matched on segment
boundaries (``/admin/flows`` holds ``/admin/flows/hello`` but not ``/admin/flowsx``).

Roles follow the Genesys Callback UI: the administrator does everything; a supervisor works
callbacks (create, cancel, reschedule any of them) and reads everything callback-related; a
monitor only reads (push credentials excepted: seed 002 gives that page to developers and
administrators only); a developer manages flows, services, transaction lists, CALLBACK_SETTINGS and
push credentials and reads the callback, notification and session APIs and business hours; a client uses the
callback, notification and session APIs, and a client key may be scoped to named services.
Managing keys (``/admin/keys``) is the administrator's alone.
"""

from __future__ import annotations

from dataclasses import dataclass

ADMINISTRATOR = "administrator"
SUPERVISOR = "supervisor"
MONITOR = "monitor"
DEVELOPER = "developer"
CLIENT = "client"

READ = frozenset({"GET", "HEAD"})

# Areas of the API.
CALLBACK_API = ("/genesys/1/service",)  # callbacks, queue position, call-in
NOTIFICATION_API = ("/genesys/1/notification",)
SESSION_API = ("/scxml/session", "/scxml/sessions")
# Push credentials are the developer's and the administrator's alone, even masked: "Only users who
# are members of the Callback Developer or Administrator Roles can access the Push Notification
# page" (seed 002).
PUSH_CONFIG = ("/admin/push",)
SHARED_CONFIG = ("/admin/flows", "/admin/services", "/admin/transaction-lists", "/admin/callback-settings")
DEVELOPER_CONFIG = (*SHARED_CONFIG, *PUSH_CONFIG)
# The console's reads (issue 13): callback records across services and click-to-call-in records
# (a developer reads these, as it reads the callback API), live queues and reports.
CALLBACK_RECORDS = ("/admin/callbacks", "/admin/call-ins")
OPERATIONS_READS = (*CALLBACK_RECORDS, "/admin/queues", "/admin/reports")
BUSINESS_HOURS = ("/admin/business-hours",)  # a developer reads the hours the services it edits name
ADMIN_READS = (*SHARED_CONFIG, *BUSINESS_HOURS, "/admin/simulator", "/admin/dead-letters",
               *OPERATIONS_READS)
METRICS = ("/metrics",)  # Prometheus scrapes with a monitor key
EVERYTHING = ("/",)


@dataclass(frozen=True)
class Grant:
    """Some areas, with the methods allowed there (``None``: every method)."""

    areas: tuple[str, ...]
    methods: frozenset[str] | None = None

    def allows(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return any(in_area(path, area) for area in self.areas)


ROLES: dict[str, tuple[Grant, ...]] = {
    ADMINISTRATOR: (Grant(EVERYTHING),),
    SUPERVISOR: (Grant(CALLBACK_API), Grant(NOTIFICATION_API + SESSION_API + ADMIN_READS, READ)),
    MONITOR: (Grant(CALLBACK_API + NOTIFICATION_API + SESSION_API + ADMIN_READS + METRICS, READ),),
    DEVELOPER: (Grant(DEVELOPER_CONFIG),
                Grant(CALLBACK_API + NOTIFICATION_API + SESSION_API + CALLBACK_RECORDS + BUSINESS_HOURS, READ)),
    CLIENT: (Grant(CALLBACK_API + NOTIFICATION_API + SESSION_API),),
}

# A client key scoped to services reaches only these areas: the session API would reach the
# sessions (and the data) of every service's callbacks.
SCOPED_CLIENT_AREAS = CALLBACK_API + NOTIFICATION_API


def in_area(path: str, area: str) -> bool:
    if area == "/":
        return True
    return path == area or path.startswith(area + "/")


class Areas:
    """Some areas compiled for one test per request: the paths equal to an area, and the prefixes
    (``area + "/"``; ``""`` for ``/``, which holds every path) that ``str.startswith`` tries at once.
    Holds a path exactly when ``in_area`` holds it for one of the areas."""

    __slots__ = ("exact", "prefixes")

    def __init__(self, areas: tuple[str, ...]) -> None:
        self.exact = frozenset(a for a in areas if a != "/")
        self.prefixes = tuple("" if a == "/" else a + "/" for a in areas)

    def hold(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)


def _compile(table: dict[str, tuple[Grant, ...]]) -> tuple[dict[str, Areas], dict[tuple[str, str], Areas]]:
    """Per role, the areas open to every method; per role and named method, the areas open to it
    (those of every method included). Built once: the check runs on every request."""
    any_method: dict[str, Areas] = {}
    by_method: dict[tuple[str, str], Areas] = {}
    for role, grants in table.items():
        everywhere = tuple(a for g in grants if g.methods is None for a in g.areas)
        any_method[role] = Areas(everywhere)
        for method in {m for g in grants if g.methods is not None for m in g.methods}:
            named = tuple(a for g in grants if g.methods is not None and method in g.methods for a in g.areas)
            by_method[role, method] = Areas(everywhere + named)
    return any_method, by_method


_ANY_METHOD, _BY_METHOD = _compile(ROLES)
_NOWHERE = Areas(())
SCOPED_CLIENT = Areas(SCOPED_CLIENT_AREAS)


def allowed(role: str, method: str, path: str) -> bool:
    """Whether a grant of ``role`` names an area holding ``path`` and ``method``."""
    areas = _BY_METHOD.get((role, method)) or _ANY_METHOD.get(role, _NOWHERE)
    return areas.hold(path)


def roles_allowing(method: str, path: str) -> list[str]:
    """The roles that could make this request; for the 403 message."""
    return [role for role in ROLES if allowed(role, method, path)]
