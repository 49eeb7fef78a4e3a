"""The role table compiled for the door (``engine/roles.py``): the same answers as its grants read
one by one, for every role, method and path around the areas' edges."""

from __future__ import annotations

import itertools

from engine import roles

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND")


def _paths() -> set[str]:
    areas = {a for grants in roles.ROLES.values() for g in grants for a in g.areas}
    paths = {"/", "", "/x", "/adminx", "/metricsx", "/genesys/1/servicex", "/genesys/1/service/callback/bench/1"}
    for area in areas:
        paths |= {area, area + "/", area + "/x/y", area + "x", area[:-1], area + "//"}
    return paths


def _by_grants(role: str, method: str, path: str) -> bool:
    return any(g.allows(method, path) for g in roles.ROLES.get(role, ()))


def test_the_compiled_table_answers_as_the_grants_do() -> None:
    for role, method, path in itertools.product((*roles.ROLES, "nobody"), METHODS, _paths()):
        assert roles.allowed(role, method, path) == _by_grants(role, method, path), (role, method, path)


def test_the_scoped_client_areas_hold_what_in_area_holds() -> None:
    for path in _paths():
        expected = any(roles.in_area(path, a) for a in roles.SCOPED_CLIENT_AREAS)
        assert roles.SCOPED_CLIENT.hold(path) == expected, path


def test_a_grant_of_every_method_reaches_methods_nobody_names() -> None:
    assert roles.allowed(roles.ADMINISTRATOR, "PROPFIND", "/admin/keys")
    assert roles.allowed(roles.CLIENT, "PROPFIND", "/genesys/1/service/callback/x")
    assert not roles.allowed(roles.MONITOR, "PROPFIND", "/genesys/1/service/callback/x")
    assert roles.allowed(roles.DEVELOPER, "DELETE", "/admin/flows/hello")
    assert not roles.allowed(roles.DEVELOPER, "DELETE", "/admin/callbacks")
