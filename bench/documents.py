"""SCXML documents for the interpreter benchmark.

Every document is plain SCXML text with ``datamodel="python"``, so the very same bytes
are fed to our interpreter and to python-statemachine's loader. Each event document
also knows which atomic states must be active after a given number of events, so the
benchmark can prove that both sides really executed the transitions it timed instead of
silently dropping events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_HEADER = (
    '<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" '
    'datamodel="python" initial="{initial}">'
)


def _scxml(initial: str, body: str) -> str:
    """Wrap ``body`` in an ``<scxml>`` root; documents only spell out their states."""
    return f"{_HEADER.format(initial=initial)}\n{body}\n</scxml>\n"


def _leaf(state_id: str, event: str, target: str, indent: int = 2) -> str:
    """Render an atomic state with a single unguarded transition."""
    return (
        f'{" " * indent}<state id="{state_id}">'
        f'<transition event="{event}" target="{target}"/></state>'
    )


@dataclass(frozen=True)
class EventDocument:
    """A document driven by one repeated event, plus the oracle that checks the result.

    ``leaves`` lists every atomic state id in the document; ``expected_leaves(k)``
    returns the atomic states that must be active after ``k`` events. ``counter`` names
    a data item that must equal the number of events sent (``None``: no counter).
    """

    name: str
    text: str
    event: str
    leaves: frozenset[str]
    expected_leaves: Callable[[int], frozenset[str]]
    counter: str | None = None


def toggle_document() -> EventDocument:
    """Build two flat states flipping on ``toggle``: the cheapest transition."""
    text = _scxml(
        "off",
        _leaf("off", "toggle", "on") + "\n" + _leaf("on", "toggle", "off"),
    )
    return EventDocument(
        name="toggle",
        text=text,
        event="toggle",
        leaves=frozenset({"off", "on"}),
        expected_leaves=lambda k: frozenset({"on" if k % 2 else "off"}),
    )


#: Leaf cycle of the nested document. Consecutive leaves sit in different top-level
#: branches, so every transition exits three levels and enters three levels.
_NESTED_CYCLE = ("a1x", "b1x", "a2y", "b2y")


def nested_document() -> EventDocument:
    """Build three compound levels; each ``go`` jumps across top-level branches."""
    lines: list[str] = ['  <state id="root" initial="a">']
    for top in ("a", "b"):
        lines.append(f'    <state id="{top}" initial="{top}1">')
        for mid in ("1", "2"):
            branch = f"{top}{mid}"
            lines.append(f'      <state id="{branch}" initial="{branch}x">')
            for suffix in ("x", "y"):
                leaf = f"{branch}{suffix}"
                if leaf in _NESTED_CYCLE:
                    position = _NESTED_CYCLE.index(leaf) + 1
                    target = _NESTED_CYCLE[position % len(_NESTED_CYCLE)]
                    lines.append(_leaf(leaf, "go", target, indent=8))
                else:
                    lines.append(f'        <state id="{leaf}"/>')
            lines.append("      </state>")
        lines.append("    </state>")
    lines.append("  </state>")
    leaves = frozenset(
        f"{top}{mid}{sfx}" for top in "ab" for mid in "12" for sfx in "xy"
    )
    return EventDocument(
        name="nested",
        text=_scxml("root", "\n".join(lines)),
        event="go",
        leaves=leaves,
        expected_leaves=lambda k: frozenset({_NESTED_CYCLE[k % len(_NESTED_CYCLE)]}),
    )


def parallel_document(regions: int = 3) -> EventDocument:
    """Build ``regions`` orthogonal regions that all toggle on the same event."""
    lines: list[str] = ['  <parallel id="p">']
    for r in range(1, regions + 1):
        lines.append(f'    <state id="r{r}" initial="a{r}">')
        lines.append(_leaf(f"a{r}", "toggle", f"b{r}", indent=6))
        lines.append(_leaf(f"b{r}", "toggle", f"a{r}", indent=6))
        lines.append("    </state>")
    lines.append("  </parallel>")
    numbers = range(1, regions + 1)
    return EventDocument(
        name="parallel",
        text=_scxml("p", "\n".join(lines)),
        event="toggle",
        leaves=frozenset(f"{ab}{r}" for ab in "ab" for r in numbers),
        expected_leaves=lambda k: frozenset(
            f"{'b' if k % 2 else 'a'}{r}" for r in numbers
        ),
    )


def guarded_assign_document() -> EventDocument:
    """Build a guarded self-transition with ``<assign>``: expression evaluation cost."""
    text = _scxml(
        "s",
        '  <datamodel><data id="n" expr="0"/></datamodel>\n'
        '  <state id="s">\n'
        '    <transition event="inc" cond="n &lt; 10**12" target="s">'
        '<assign location="n" expr="n + 1"/></transition>\n'
        "  </state>",
    )
    return EventDocument(
        name="guarded_assign",
        text=text,
        event="inc",
        leaves=frozenset({"s"}),
        expected_leaves=lambda _k: frozenset({"s"}),
        counter="n",
    )


def event_documents() -> list[EventDocument]:
    """Return the four event-throughput documents, in report order."""
    return [
        toggle_document(),
        nested_document(),
        parallel_document(),
        guarded_assign_document(),
    ]


#: Each generated group is one compound state with this many atomic children.
_GROUP_LEAVES = 4


@dataclass(frozen=True)
class SizedDocument:
    """A generated document with ``states`` states, its first leaf and first count."""

    states: int
    text: str
    initial_leaf: str
    initial_count: int


def sized_document(states: int) -> SizedDocument:
    """Generate a realistic-looking chart with exactly ``states`` states.

    States come in groups of one compound state plus four leaves: leaves cycle on
    ``next``, groups chain on ``jump``, and every group has an ``onentry`` assign and a
    guarded ``<assign>`` transition on ``bump``, so a session carries transitions,
    guards and two data items. States that do not fill a whole group are appended as
    flat atomic states. Entering the first group sets ``count`` to 1.
    """
    groups, extra = divmod(states, _GROUP_LEAVES + 1)
    tops = [f"g{g}" for g in range(groups)] + [f"x{e}" for e in range(extra)]
    datamodel = (
        '  <datamodel><data id="count" expr="0"/>'
        '<data id="limit" expr="100"/></datamodel>'
    )
    lines = [datamodel]
    for index, top in enumerate(tops):
        target = tops[(index + 1) % len(tops)]
        if index >= groups:
            lines.append(_leaf(top, "jump", target))
            continue
        lines.append(f'  <state id="{top}" initial="{top}_0">')
        lines.append(
            '    <onentry><assign location="count" expr="count + 1"/></onentry>'
        )
        lines.append(f'    <transition event="jump" target="{target}"/>')
        lines.append(
            '    <transition event="bump" cond="count &lt; limit">'
            '<assign location="count" expr="count + 1"/></transition>'
        )
        for leaf in range(_GROUP_LEAVES):
            following = f"{top}_{(leaf + 1) % _GROUP_LEAVES}"
            lines.append(_leaf(f"{top}_{leaf}", "next", following, indent=4))
        lines.append("  </state>")
    initial_leaf = f"{tops[0]}_0" if groups else tops[0]
    return SizedDocument(
        states=states,
        text=_scxml(tops[0], "\n".join(lines)),
        initial_leaf=initial_leaf,
        initial_count=1 if groups else 0,
    )


def idle_timer_document(delay: str = "60s") -> str:
    """Build a session that arms one delayed ``<send>`` on entry and waits for it."""
    return _scxml(
        "waiting",
        '  <state id="waiting">\n'
        f'    <onentry><send event="timeout" delay="{delay}"/></onentry>\n'
        '    <transition event="timeout" target="expired"/>\n'
        "  </state>\n"
        '  <state id="expired"/>',
    )
