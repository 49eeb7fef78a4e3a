"""The role table compiled for the door (``engine/roles.py``): the same answers as its grants read
one by one, for every role, method and path around the areas' edges."""

from __future__ import annotations

import itertools
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- the compiled table against the grant-walking code it replaced, over generated inputs ------------

def _in_area_before(path: str, area: str) -> bool:
    """``roles.in_area`` as it was before the table was compiled (the reference, copied)."""
    if area == "/":
        return True
    return path == area or path.startswith(area + "/")


def _allowed_before(table: dict[str, tuple[roles.Grant, ...]], role: str, method: str, path: str) -> bool:
    """``roles.allowed`` before the table was compiled (87c0ece): each grant read one by one."""
    for grant in table.get(role, ()):
        if grant.methods is not None and method not in grant.methods:
            continue
        if any(_in_area_before(path, area) for area in grant.areas):
            return True
    return False


_AREAS = sorted({a for grants in roles.ROLES.values() for g in grants for a in g.areas})
_PIECES = (*_AREAS, "/", "//", "", "x", "/x", "..", "/..", "%2F", "%2f", "/%2e%2e", "X", "-", ".", "?")
_METHODS = st.sampled_from((*METHODS, "get", "", "TRACE"))
_ROLE_NAMES = (*roles.ROLES, "nobody", "")
# Paths glued from the table's areas and the characters found at their edges, with some noise.
_PATHS = st.lists(st.sampled_from(_PIECES) | st.text(alphabet="/ax.%-", max_size=4), max_size=6).map("".join)
_GRANT_AREAS = st.sampled_from((*_AREAS, "/", "", "/a", "/a/", "/a/b", "/ab", "//", "a"))
_GRANTS = st.builds(roles.Grant, st.lists(_GRANT_AREAS, max_size=4).map(tuple),
                    st.none() | st.frozensets(_METHODS, max_size=3))
_TABLES = st.dictionaries(st.sampled_from(_ROLE_NAMES), st.lists(_GRANTS, max_size=4).map(tuple), max_size=4)


@settings(max_examples=600, deadline=None)
@given(role=st.sampled_from(_ROLE_NAMES), method=_METHODS, path=_PATHS)
def test_the_shipped_table_answers_as_the_old_code_for_generated_requests(role: str, method: str, path: str) -> None:
    assert roles.allowed(role, method, path) == _allowed_before(roles.ROLES, role, method, path)
    expected = any(_in_area_before(path, a) for a in roles.SCOPED_CLIENT_AREAS)
    assert roles.SCOPED_CLIENT.hold(path) == expected


@settings(max_examples=500, deadline=None)
@given(table=_TABLES, data=st.data())
def test_any_compiled_table_answers_as_its_grants(table, data) -> None:
    """Not only today's table: the compilation is right for any grants (a grant of no method, of
    every method, areas of ``/``, of ``""``, ending in ``/``, nested, repeated), so the next change
    to ``ROLES`` cannot make the door disagree with the table as written. The requests are drawn
    mostly from the table's own roles, methods and areas, where the two could differ."""
    named = sorted({a for grants in table.values() for g in grants for a in g.areas}) or [""]
    methods = sorted({m for grants in table.values() for g in grants for m in g.methods or ()})
    role_of = st.sampled_from(sorted(table) or ["nobody"]) | st.sampled_from(_ROLE_NAMES)
    method_of = (st.sampled_from(methods) if methods else _METHODS) | _METHODS
    path_of = st.tuples(st.sampled_from(named), _PATHS).map("".join) | _PATHS
    any_method, by_method = roles._compile(table)
    with mock.patch.multiple(roles, _ANY_METHOD=any_method, _BY_METHOD=by_method):
        for _ in range(20):
            role, method, path = data.draw(role_of), data.draw(method_of), data.draw(path_of)
            assert roles.allowed(role, method, path) == _allowed_before(table, role, method, path), \
                (role, method, path)
