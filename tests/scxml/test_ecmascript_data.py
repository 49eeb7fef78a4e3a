"""Issue 11 item 3 and 6: ecmascript data survives a snapshot whole (what JSON alone would lose
too), a waiting session holds no JavaScript context, contexts are bounded, values keep their
ECMAScript identity and types across Python, and syntax errors are reported with line and column."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from engine.jsonable import jsonable
from engine.scxml import Session, SessionHost, compile_document, standard_registry
from engine.scxml.ecmascript import EcmaScriptDataModel, SandboxLimits
from engine.scxml.snapshot import decode_state, encode_state
from tests.conftest import REPO

HEAD = '<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">'

TRICKY = HEAD + """
<datamodel><data id="ok" expr="false"/><data id="report" expr="''"/></datamodel>
<script>
  var u = undefined, n = null, nan = NaN, inf = -Infinity, negzero = -0, big = 12345678901234567890n;
  var when = new Date(86400000), re = /a+b/gi, m = new Map([[1, 'one'], ['k', {deep: [1, undefined]}]]);
  var set = new Set(['x', 2]), nul = 'a' + String.fromCharCode(0) + 'b', tagged = {'$t': 'u', v: 1};
  var shared = {count: 1}, holder = {first: shared, second: shared};
  var cyclic = {name: 'loop'}; cyclic.self = cyclic;
  var sparse = [1, undefined, 3];
  function twice(x) { return 2 * x; }
</script>
<state id="s">
  <transition event="check">
    <script>
      var problems = [];
      function expect(what, good) { if (!good) problems.push(what); }
      expect('u', u === undefined &amp;&amp; typeof u === 'undefined');
      expect('n', n === null);
      expect('nan', nan !== nan);
      expect('inf', inf === -Infinity);
      expect('negzero', negzero === 0 &amp;&amp; 1 / negzero === -Infinity);
      expect('big', big === 12345678901234567890n);
      expect('when', when instanceof Date &amp;&amp; when.getTime() === 86400000);
      expect('re', re instanceof RegExp &amp;&amp; re.source === 'a+b' &amp;&amp; re.flags === 'gi');
      expect('map', m instanceof Map &amp;&amp; m.get(1) === 'one' &amp;&amp; m.get('k').deep.length === 2
             &amp;&amp; m.get('k').deep[1] === undefined);
      expect('set', set instanceof Set &amp;&amp; set.has('x') &amp;&amp; set.has(2));
      expect('nul', nul.length === 3 &amp;&amp; nul.charCodeAt(1) === 0);
      expect('tagged', tagged.$t === 'u' &amp;&amp; tagged.v === 1);
      expect('shared', holder.first === holder.second &amp;&amp; holder.first === shared);
      expect('cyclic', cyclic.self === cyclic &amp;&amp; cyclic.name === 'loop');
      expect('sparse', sparse.length === 3 &amp;&amp; sparse[1] === undefined &amp;&amp; sparse[2] === 3);
      expect('twice', twice(21) === 42);
      report = problems.join(',');
      ok = problems.length === 0;
    </script>
  </transition>
</state></scxml>"""


def make_host(**limits) -> SessionHost:
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(SandboxLimits(**limits)))
    return SessionHost(registry=registry)


def through_json(session: Session, host: SessionHost, doc) -> Session:
    """What a restart does: the state as stored JSON, and a new session from it."""
    stored = json.loads(json.dumps(encode_state(session.to_state())))
    return Session.from_state(host, doc, session.id, decode_state(stored))


def test_values_json_would_lose_survive_a_snapshot() -> None:
    host = make_host()
    doc = compile_document(TRICKY, registry=host.registry)
    s = host.start_session(doc)
    s.send("check")
    assert s.variables["ok"] is True, s.variables["report"]
    restored = through_json(s, host, doc)
    assert not restored.datamodel.live  # restored as text; the context is built on the first event
    restored.send("check")
    assert restored.variables["ok"] is True, restored.variables["report"]
    restored.send("check")  # and again, after a second snapshot of the restored values
    assert through_json(restored, host, doc).variables["report"] == ""
    # what a session query shows of them (JSON): readable, not the tagged form
    shown = json.loads(json.dumps(jsonable(restored.variables)))
    assert (shown["u"], shown["n"], shown["when"], shown["big"]) == ("undefined", None, "1970-01-02T00:00:00Z",
                                                                     "12345678901234567890n")
    assert shown["tagged"] == {"$t": "u", "v": 1} and shown["sparse"] == [1, "undefined", 3]


def test_a_waiting_session_holds_no_context_and_contexts_are_bounded() -> None:
    host = make_host(live_contexts=2)
    kind = host.registry.datamodel("ecmascript")
    # Math.hypot: a call only a context answers (n + 1 and Math.abs(n) are answered without one)
    doc = compile_document(HEAD + '<datamodel><data id="n" expr="0"/></datamodel><state id="s">'
                           '<transition event="bump"><assign location="n" expr="Math.hypot(n) + 1"/></transition>'
                           '</state></scxml>', registry=host.registry)
    sessions = [host.start_session(doc) for _ in range(5)]
    for _ in range(3):
        for s in sessions:
            s.send("bump")
    assert len(kind.pool) == 2 and sum(s.datamodel.live for s in sessions) == 2
    assert [s.variables["n"] for s in sessions] == [3] * 5
    kind.pool.drop_all()
    assert not any(s.datamodel.live for s in sessions)
    sessions[0].send("bump")
    assert sessions[0].variables["n"] == 4 and sessions[0].datamodel.live


async def test_idle_contexts_are_dropped_after_the_idle_time() -> None:
    host = make_host(idle_seconds=0.05)
    kind = host.registry.datamodel("ecmascript")
    doc = compile_document(TRICKY, registry=host.registry)
    s = host.start_session(doc)
    assert s.datamodel.live
    await asyncio.sleep(0.3)
    assert not s.datamodel.live and len(kind.pool) == 0
    s.send("check")  # rebuilt from its saved variables
    assert s.variables["ok"] is True, s.variables["report"]


def test_assignment_shares_objects_and_event_data_keeps_undefined_and_null() -> None:
    host = make_host()
    doc = compile_document(HEAD + """
      <datamodel><data id="a" expr="({x: 1})"/><data id="b"/><data id="got" expr="''"/></datamodel>
      <state id="s">
        <onentry>
          <assign location="b" expr="a"/>
          <script>a.x = 5;</script>
          <send event="data">
            <param name="u" expr="undefined"/><param name="n" expr="null"/>
            <param name="nul" expr="'x' + String.fromCharCode(0) + 'y'"/>
          </send>
        </onentry>
        <transition event="data" cond="b.x === 5 &amp;&amp; b === a &amp;&amp; 'u' in _event.data
            &amp;&amp; _event.data.u === undefined &amp;&amp; _event.data.n === null
            &amp;&amp; _event.data.nul.length === 3" target="pass"/>
        <transition event="data" target="fail"/>
      </state><final id="pass"/><final id="fail"/></scxml>""", registry=host.registry)

    async def run() -> Session:
        s = host.start_session(doc)
        for _ in range(50):
            if not s.is_running:
                break
            await asyncio.sleep(0.01)
        return s

    assert asyncio.run(run()).final_state == "pass"


@pytest.mark.parametrize(("attribute", "where"), [
    ('cond="x &gt;"', ":3:3: cond='x >': expression does not compile: SyntaxError"),
    ('expr="1 +* 2"', ":3:3: expr='1 +* 2': expression does not compile: SyntaxError"),
])
def test_validate_reports_expression_syntax_errors_with_line_and_column(tmp_path, attribute, where) -> None:
    element = "transition" if attribute.startswith("cond") else "log"
    body = f'<transition event="e" {attribute}/>' if element == "transition" else \
        f'<onentry><log {attribute}/></onentry>'
    path = tmp_path / "bad.scxml"
    path.write_text(f'{HEAD}\n<state id="s">\n  {body}\n</state></scxml>\n')
    if element == "log":
        where = where.replace(":3:3:", ":3:12:")
    done = subprocess.run([sys.executable, str(REPO / "run_engine.py"), "validate", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1
    line = done.stdout.strip().splitlines()[0]
    assert line.startswith(f"{path}{where}"), line
    assert "column" in line


def test_validate_reports_script_syntax_errors_at_their_document_line(tmp_path) -> None:
    path = tmp_path / "bad.scxml"
    path.write_text(f'{HEAD}\n<script>\n  var ok = 1;\n  var broken = ;\n</script>\n<state id="s"/></scxml>\n')
    done = subprocess.run([sys.executable, str(REPO / "run_engine.py"), "validate", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1
    assert "script does not compile: SyntaxError" in done.stdout and "at line 4, column 16" in done.stdout, \
        done.stdout


def test_what_a_snapshot_keeps_matches_the_context_after_every_kind_of_change() -> None:
    """Snapshots read back only what may have changed; every event here changes something a
    different way, the context is dropped after each, and the flow checks it all at the end."""
    host = make_host()
    kind = host.registry.datamodel("ecmascript")
    doc = compile_document(HEAD + """
      <datamodel><data id="a" expr="({x: 1})"/><data id="b"/><data id="n" expr="1"/><data id="s" expr="'x'"/>
        <data id="list" expr="[1, 2]"/><data id="ok" expr="false"/></datamodel>
      <state id="s">
        <transition event="share"><assign location="b" expr="a"/></transition>
        <transition event="deep"><assign location="a.x" expr="2"/></transition>
        <transition event="number"><assign location="n" expr="n + 1"/></transition>
        <transition event="call" cond="list.push(3) > 0"/>
        <transition event="script"><script>s = s + 'y'; var made = {deep: [b]};</script></transition>
        <transition event="each"><foreach array="[7, 8]" item="item" index="i"/></transition>
        <transition event="back"><assign location="a" expr="5"/></transition>
        <transition event="check">
          <assign location="ok" expr="b.x === 2 &amp;&amp; n === 2 &amp;&amp; list.length === 3
              &amp;&amp; s === 'xy' &amp;&amp; made.deep[0] === b &amp;&amp; item === 8
              &amp;&amp; i === 1 &amp;&amp; a === 5"/>
        </transition>
      </state></scxml>""", registry=host.registry)
    s = host.start_session(doc)
    for event in ["share", "deep", "number", "call", "script", "each", "back", "check"]:
        s.send(event)
        s.to_state()  # a snapshot after every macrostep, as the engine takes
        kind.pool.drop_all()
    assert s.variables["ok"] is True


def test_integral_numbers_come_out_as_integers() -> None:
    host = make_host()
    doc = compile_document(HEAD + '<datamodel><data id="n" expr="JSON.parse(\'1.5\') * 2"/></datamodel>'
                           '<state id="s"><transition event="bump"><assign location="n" expr="n / 3 + 1"/>'
                           '</transition></state></scxml>', registry=host.registry)
    s = host.start_session(doc)
    s.send("bump")
    assert s.variables["n"] == 2 and type(s.variables["n"]) is int


def test_refused_start_names_are_answered_per_set_of_names() -> None:
    kind = EcmaScriptDataModel(SandboxLimits())
    given = {"_id": 1, "_event": 2, "__x": 3, "_genesys": 4, "ok": 5}
    assert kind.refused_names(given) == ["_event", "__x", "_genesys"]
    answer = kind.refused_names(["a", "_sessionid"])
    answer.append("mine")  # the caller's list: the remembered answer stays as it was
    assert kind.refused_names(iter(["a", "_sessionid"])) == ["_sessionid"]
    assert kind.refused_names(["a", "b"]) == [] and kind.refused_names([]) == []
