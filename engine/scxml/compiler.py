"""Parse an SCXML document with lxml and compile it into an immutable ``Document``.

Every problem found is collected with its line and column, so ``validate`` can report them all
at once. Problems the W3C standard wants raised at run time (``error.execution``) are marked
deferred: non-strict loading keeps the document and the session raises the error when it gets
there; strict loading (flow registry, ``validate``) refuses the document.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from lxml import etree

from .datamodel import Code, DataModelKind
from .errors import DocumentError, ExecutionError, Problem
from .events import parse_descriptors
from .executable import (
    Action,
    Assign,
    Cancel,
    Content,
    DoneData,
    Foreach,
    If,
    InvokeDef,
    Log,
    Param,
    Raise,
    Script,
    Send,
)
from .model import FINAL, HISTORY, PARALLEL, ROOT, STATE, DataDecl, Document, StateNode, Transition, transition_domain
from .registry import Registry
from .standard import DEFAULT_REGISTRY
from .values import load_src, parse_delay, value_factory

SCXML_NS = "http://www.w3.org/2005/07/scxml"
_NS_PREFIX = "{" + SCXML_NS + "}"

# Atomic states a document may hold active at once (the sum over parallel regions).
MAX_ACTIVE_STATES = 128
_STATE_KINDS = {"state": STATE, "parallel": PARALLEL, "final": FINAL, "history": HISTORY}
_CHILDREN = {
    "scxml": {"state", "parallel", "final", "datamodel", "script"},
    "state": {"onentry", "onexit", "transition", "initial", "state", "parallel", "final",
              "history", "datamodel", "invoke"},
    "parallel": {"onentry", "onexit", "transition", "state", "parallel", "history",
                 "datamodel", "invoke"},
    "final": {"onentry", "onexit", "donedata"},
    "history": {"transition"},
    "initial": {"transition"},
}
_EXECUTABLE = {"raise", "if", "elseif", "else", "foreach", "log", "assign", "script", "send", "cancel"}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True,
        huge_tree=False, load_dtd=False,
    )


def local_name(el: etree._Element) -> tuple[str | None, str]:
    """(namespace, name) of an element; SCXML elements may also come without a namespace."""
    tag = el.tag
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return None, tag


def is_scxml(el: etree._Element) -> bool:
    return el.tag.startswith(_NS_PREFIX) or not el.tag.startswith("{")


class Compiler:
    """Compiles one document; custom action factories receive it to compile their parts."""

    def __init__(self, source: str, base_dir: str | None, registry: Registry, default_datamodel: str):
        self.source = source
        self.base_dir = base_dir
        self.registry = registry
        self.default_datamodel = default_datamodel
        self.problems: list[Problem] = []
        self.datamodel: DataModelKind = registry.datamodel(default_datamodel)  # type: ignore[assignment]
        self._states: list[StateNode] = []
        self._by_id: dict[str, StateNode] = {}
        self._pending_targets: list[tuple[Transition, str, etree._Element]] = []
        self._auto_ids = 0
        self._transition_order = 0
        self._invoke_order = 0
        self._has_late_data = False
        self.columns: dict[etree._Element, int] = {}

    def col(self, el: etree._Element | None) -> int:
        """1-based column of an element's start tag (0 when unknown)."""
        if el is None:
            return 0
        return self.columns.get(el, 1)

    # -- reporting -------------------------------------------------------------------------
    def problem(self, el: etree._Element | None, message: str, deferred: bool = False) -> None:
        line = getattr(el, "sourceline", None) or 0
        self.problems.append(Problem(self.source, line, self.col(el), message, deferred))

    # -- expressions -----------------------------------------------------------------------
    def expr(self, el: etree._Element, attr: str, empty_means_absent: bool = False) -> Code | None:
        text = el.get(attr)
        if text is None or (empty_means_absent and not text.strip()):
            return None
        code = self.datamodel.compile_expr(text, el.sourceline or 0, self.col(el))
        if code.error:
            self.problem(el, f"{attr}={text.strip()!r}: {code.error}", deferred=True)
        return code

    def location(self, el: etree._Element, attr: str) -> Code | None:
        text = el.get(attr)
        if text is None:
            return None
        code = self.datamodel.compile_location(text, el.sourceline or 0, self.col(el))
        if code.error:
            self.problem(el, f"{attr}={text.strip()!r}: {code.error}", deferred=True)
        return code

    def namelist(self, el: etree._Element) -> tuple[Code, ...]:
        text = el.get("namelist")
        if not text:
            return ()
        out = []
        for name in text.split():
            code = self.datamodel.compile_expr(name, el.sourceline or 0, self.col(el))
            if code.error:
                self.problem(el, f"namelist entry {name!r}: {code.error}", deferred=True)
            out.append(code)
        return tuple(out)

    # -- the document ----------------------------------------------------------------------
    def compile_root(self, root: etree._Element, text: str) -> Document:
        _, name = local_name(root)
        if name != "scxml" or not is_scxml(root):
            self.problem(root, f"the root element must be <scxml>, not <{name}>")
            raise DocumentError(self.problems)
        dm_name = root.get("datamodel", self.default_datamodel)
        dm = self.registry.datamodel(dm_name)
        if dm is None:
            self.problem(root, f"unknown datamodel {dm_name!r}")
            raise DocumentError(self.problems)
        self.datamodel = dm
        binding = root.get("binding", "early")
        if binding not in ("early", "late"):
            self.problem(root, f"binding must be 'early' or 'late', not {binding!r}")
        top = StateNode("__scxml_root", ROOT, None, root.sourceline or 0, self.col(root))
        self._states.append(top)
        scripts: list[Action] = []
        data: list[DataDecl] = []
        for child in root:
            cname = self._child_name(root, "scxml", child)
            if cname == "datamodel":
                data.extend(self._datamodel(child))
            elif cname == "script":
                scripts.append(self._script(child))
            elif cname in _STATE_KINDS and cname != "history":
                top.children.append(self._state(child, cname, top))
        top.data = tuple(data)
        if not top.children:
            self.problem(root, "the document has no states")
        self._resolve_targets()
        top.initial = self._initial_transition(top, root, root.get("initial"))
        states = self._states
        for i, s in enumerate(states):
            s.order = i
        for s in states:
            s.finish()
        self._check_concurrency(states)
        has_history = any(s.kind == HISTORY for s in states)
        for s in states:
            for t in s.transitions:
                _prepare_transition(t)
            if s.initial is not None:
                _prepare_transition(s.initial)
        doc = Document(
            name=root.get("name"),
            source=self.source,
            base_dir=self.base_dir,
            datamodel=dm,
            binding=binding,
            root=top,
            states=states[1:],
            by_id=self._by_id,
            script=tuple(scripts),
            problems=[p for p in self.problems if p.deferred],
            has_history=has_history,
            uses_late_data=binding == "late" and self._has_late_data,
            text=text,
            content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        )
        return doc

    def _check_concurrency(self, states: list[StateNode]) -> None:
        """Refuse a document whose parallel regions can hold more than ``MAX_ACTIVE_STATES``
        atomic states active at once: each microstep's conflict resolution and exit and entry
        sets grow with the square of that number, in one step no turn budget can cut (3,000
        regions held the event loop 1.5 s per event)."""
        active: dict[int, int] = {}
        for s in reversed(states):  # children come after their parent in document order
            counts = [active[id(c)] for c in s.children if c.kind != HISTORY]
            active[id(s)] = (sum(counts) if s.kind == PARALLEL else max(counts)) if counts else 1
        worst = next((s for s in states if s.kind == PARALLEL and active[id(s)] > MAX_ACTIVE_STATES), None)
        if worst is not None:
            self.problems.append(Problem(
                self.source, worst.line, worst.column,
                f"<parallel id={worst.id!r}> can hold {active[id(worst)]} states active at once; at most "
                f"{MAX_ACTIVE_STATES} are allowed (each step costs the square of that number)", limit=True))

    def _child_name(self, parent: etree._Element, pname: str, child: etree._Element) -> str | None:
        """Name of an allowed SCXML child, or None after reporting why it is not allowed."""
        ns, name = local_name(child)
        if not is_scxml(child):
            self.problem(child, f"unknown element <{name}> in namespace {ns!r} inside <{pname}>")
            return None
        if name not in _CHILDREN.get(pname, ()):
            self.problem(child, f"<{name}> is not allowed inside <{pname}>")
            return None
        return name

    def _new_id(self, kind: str) -> str:
        self._auto_ids += 1
        return f"__{kind}_{self._auto_ids}"

    def _state(self, el: etree._Element, cname: str, parent: StateNode) -> StateNode:
        sid = el.get("id") or self._new_id(cname)
        node = StateNode(sid, _STATE_KINDS[cname], parent, el.sourceline or 0, self.col(el))
        if sid in self._by_id:
            self.problem(el, f"duplicate state id {sid!r}")
        else:
            self._by_id[sid] = node
        self._states.append(node)
        onentry: list[Action] = []
        onexit: list[Action] = []
        invokes: list[InvokeDef] = []
        data: list[DataDecl] = []
        initial_el = None
        for child in el:
            name = self._child_name(el, cname, child)
            if name is None:
                continue
            if name in ("state", "parallel", "final"):
                node.children.append(self._state(child, name, node))
            elif name == "history":
                node.history.append(self._state(child, name, node))
            elif name == "transition":
                node.transitions.append(self._transition(child, node))
            elif name == "onentry":
                onentry.append(self.block(child))  # type: ignore[arg-type]
            elif name == "onexit":
                onexit.append(self.block(child))  # type: ignore[arg-type]
            elif name == "datamodel":
                data.extend(self._datamodel(child))
            elif name == "invoke":
                invokes.append(self._invoke(child, node))
            elif name == "initial":
                if initial_el is not None:
                    self.problem(child, "a state has at most one <initial>")
                initial_el = child
            elif name == "donedata":
                node.donedata = self._donedata(child)
        node.onentry = tuple(b for b in onentry)
        node.onexit = tuple(b for b in onexit)
        node.invokes = tuple(invokes)
        node.data = tuple(data)
        if data:
            self._has_late_data = True
        if node.kind == HISTORY:
            kind = el.get("type", "shallow")
            if kind not in ("shallow", "deep"):
                self.problem(el, f"history type must be 'shallow' or 'deep', not {kind!r}")
            node.history_deep = kind == "deep"
            if len(node.transitions) != 1:
                self.problem(el, "a <history> needs exactly one default <transition>")
            elif node.transitions[0].events is not None or node.transitions[0].cond is not None:
                self.problem(el, "the default transition of a <history> has no event or cond")
        if node.kind == STATE and node.children:
            if initial_el is not None and el.get("initial"):
                self.problem(el, "a state cannot have both an initial attribute and <initial>")
            if initial_el is not None:
                trans = [c for c in initial_el if local_name(c)[1] == "transition"]
                if len(trans) != 1:
                    self.problem(initial_el, "<initial> needs exactly one <transition>")
                    node.initial = self._initial_transition(node, el, None)
                else:
                    t = self._transition(trans[0], node)
                    if t.events is not None or t.cond is not None:
                        self.problem(trans[0], "the transition of <initial> has no event or cond")
                    node.initial = t
            else:
                node.initial = self._initial_transition(node, el, el.get("initial"))
        elif el.get("initial") and node.kind == STATE:
            self.problem(el, "an initial attribute on a state without children")
        return node

    def _initial_transition(self, node: StateNode, el: etree._Element, initial: str | None) -> Transition | None:
        t = Transition(node, None, None, (), True, (), -1, el.sourceline or 0, self.col(el))
        if initial:
            self._pending_targets.append((t, initial, el))
            self._resolve_targets()
        elif node.children:
            t.targets = (node.children[0],)
        return t

    def _transition(self, el: etree._Element, source: StateNode) -> Transition:
        event = el.get("event")
        events = parse_descriptors(event) if event is not None else None
        if event is not None and not events:
            self.problem(el, "empty event attribute")
        cond = self.expr(el, "cond", empty_means_absent=True)
        kind = el.get("type", "external")
        if kind not in ("internal", "external"):
            self.problem(el, f"transition type must be 'internal' or 'external', not {kind!r}")
        self._transition_order += 1
        t = Transition(
            source, events, cond, (), kind == "internal", self.block(el),
            self._transition_order, el.sourceline or 0, self.col(el),
        )
        target = el.get("target")
        if target is not None:
            if not target.split():
                self.problem(el, "empty target attribute")
            self._pending_targets.append((t, target, el))
        elif events is None and cond is None and source.kind != HISTORY:
            pass  # a targetless eventless unconditional transition is legal (if odd)
        return t

    def _resolve_targets(self) -> None:
        """Targets may point forward in the document, so they resolve once ids are known."""
        still: list[tuple[Transition, str, etree._Element]] = []
        for t, text, el in self._pending_targets:
            targets = []
            for tid in text.split():
                node = self._by_id.get(tid)
                if node is None:
                    still.append((t, text, el))
                    break
                targets.append(node)
            else:
                t.targets = tuple(targets)
        self._pending_targets = still

    # -- executable content ----------------------------------------------------------------
    def block(self, el: etree._Element) -> tuple[Action, ...]:
        actions: list[Action] = []
        for child in el:
            action = self.action(child)
            if action is not None:
                actions.append(action)
        return tuple(actions)

    def action(self, el: etree._Element) -> Action | None:
        ns, name = local_name(el)
        line = el.sourceline or 0
        if not is_scxml(el):
            factory = self.registry.actions.get((ns or "", name))
            if factory is None:
                self.problem(el, f"unknown executable content <{name}> in namespace {ns!r}")
                return None
            try:
                return factory(el, self)
            except (ValueError, ExecutionError) as e:
                self.problem(el, f"<{name}>: {e}")
                return None
        if name not in _EXECUTABLE or name in ("elseif", "else"):
            self.problem(el, f"<{name}> is not executable content here")
            return None
        if name == "raise":
            event = el.get("event")
            if not event:
                self.problem(el, "<raise> needs an event")
                return None
            return Raise(event, line)
        if name == "log":
            return Log(el.get("label"), self.expr(el, "expr", empty_means_absent=True), line)
        if name == "assign":
            return self._assign(el)
        if name == "if":
            return self._if(el)
        if name == "foreach":
            array = self.expr(el, "array")
            item = el.get("item")
            if array is None or not item:
                self.problem(el, "<foreach> needs array and item")
                return None
            return Foreach(array, item, el.get("index"), self.block(el), line)
        if name == "script":
            return self._script(el)
        if name == "send":
            return self._send(el)
        if name == "cancel":
            sendid, sendidexpr = el.get("sendid"), self.expr(el, "sendidexpr")
            if (sendid is None) == (sendidexpr is None):
                self.problem(el, "<cancel> needs exactly one of sendid and sendidexpr")
                return None
            return Cancel(sendid, sendidexpr, line)
        return None

    def _assign(self, el: etree._Element) -> Action | None:
        location = self.location(el, "location")
        if location is None:
            # W3C test 401 wants this raised as error.execution when it runs.
            self.problem(el, "<assign> needs a location", deferred=True)
            location = Code("", el.sourceline or 0, self.col(el))
            location.error = "<assign> has no location"
        expr = self.expr(el, "expr")
        factory = None
        if expr is None:
            factory = self._inline_value(el)
        elif len(el) or (el.text or "").strip():
            self.problem(el, "<assign> has both expr and content")
        return Assign(location, expr, factory, el.sourceline or 0)

    def _inline_value(self, el: etree._Element) -> Callable[[], Any] | None:
        children = [c for c in el if isinstance(c.tag, str)]
        if children:
            return value_factory(None, children[0])
        if el.text is not None and el.text.strip():
            return value_factory(el.text, None)
        return None

    def _if(self, el: etree._Element) -> If:
        branches: list[tuple[Code | None, list[Action]]] = []
        cond = self.expr(el, "cond")
        if cond is None:
            self.problem(el, "<if> needs a cond")
        branches.append((cond, []))
        seen_else = False
        for child in el:
            _, name = local_name(child)
            if is_scxml(child) and name == "elseif":
                if seen_else:
                    self.problem(child, "<elseif> after <else>")
                c = self.expr(child, "cond")
                if c is None:
                    self.problem(child, "<elseif> needs a cond")
                branches.append((c, []))
            elif is_scxml(child) and name == "else":
                if seen_else:
                    self.problem(child, "more than one <else>")
                seen_else = True
                branches.append((None, []))
            else:
                action = self.action(child)
                if action is not None:
                    branches[-1][1].append(action)
        return If(tuple((c, tuple(b)) for c, b in branches), el.sourceline or 0)

    def _script(self, el: etree._Element) -> Script:
        src = el.get("src")
        line = el.sourceline or 0
        if src is not None:
            if (el.text or "").strip():
                self.problem(el, "<script> has both src and content")
            try:
                path = _local_file(src, self.base_dir)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, ExecutionError) as e:
                # W3C test 301: a script that cannot be fetched makes the document invalid.
                self.problem(el, f"cannot load script {src!r}: {getattr(e, 'strerror', None) or e}")
                text = ""
        else:
            text = el.text or ""
        code = self.datamodel.compile_script(text, line, self.col(el))
        if code.error:
            self.problem(el, code.error, deferred=True)
        return Script(code, line)

    def _exclusive(self, el: etree._Element, *names: str) -> None:
        present = [n for n in names if el.get(n) is not None]
        if len(present) > 1:
            self.problem(el, f"<{local_name(el)[1]}> may have only one of {', '.join(present)}")

    def _params(self, el: etree._Element) -> tuple[Param, ...]:
        params = []
        for child in el:
            _, name = local_name(child)
            if is_scxml(child) and name == "param":
                pname = child.get("name")
                if not pname:
                    self.problem(child, "<param> needs a name")
                    continue
                self._exclusive(child, "expr", "location")
                expr = self.expr(child, "expr")
                loc = None
                if child.get("location") is not None:
                    loc = self.datamodel.compile_expr(child.get("location"), child.sourceline or 0, self.col(child))
                    if loc.error:
                        self.problem(child, f"location: {loc.error}", deferred=True)
                params.append(Param(pname, expr, loc))
        return tuple(params)

    def _content(self, el: etree._Element, allow_document: bool = False) -> Content | None:
        found = None
        for child in el:
            _, name = local_name(child)
            if is_scxml(child) and name == "content":
                if found is not None:
                    self.problem(child, "only one <content> is allowed")
                found = child
        if found is None:
            return None
        expr = self.expr(found, "expr")
        if expr is not None:
            if len(found) or (found.text or "").strip():
                self.problem(found, "<content> has both expr and children")
            return Content(expr=expr)
        elements = [c for c in found if isinstance(c.tag, str)]
        if allow_document and elements and local_name(elements[0])[1] == "scxml":
            # A child without a datamodel attribute takes its parent's (a sandboxed parent must
            # not get a python child by default).
            sub = Compiler(self.source, self.base_dir, self.registry, self.datamodel.name or self.default_datamodel)
            sub.columns = self.columns
            try:
                doc = sub.compile_root(elements[0], etree.tostring(elements[0], encoding="unicode"))
            except DocumentError:
                doc = None
            self.problems.extend(sub.problems)
            return Content(document=doc, factory=value_factory(None, elements[0]))
        return Content(factory=self._inline_value(found))

    def _check_children(self, el: etree._Element, allowed: set[str]) -> None:
        for child in el:
            _, name = local_name(child)
            if not is_scxml(child) or name not in allowed:
                self.problem(child, f"<{name}> is not allowed inside <{local_name(el)[1]}>")

    def _send(self, el: etree._Element) -> Send | None:
        self._check_children(el, {"param", "content"})
        for pair in (("event", "eventexpr"), ("target", "targetexpr"), ("type", "typeexpr"),
                     ("id", "idlocation"), ("delay", "delayexpr")):
            self._exclusive(el, *pair)
        typ = el.get("type")
        if typ is not None and self.registry.processor_type(typ) is None:
            self.problem(el, f"unknown send type {typ!r}", deferred=True)
        delay = None
        if el.get("delay") is not None:
            try:
                delay = parse_delay(el.get("delay"))
            except ExecutionError as e:
                self.problem(el, str(e))
        content = self._content(el)
        namelist = self.namelist(el)
        params = self._params(el)
        if content is not None and (namelist or params):
            self.problem(el, "<send> cannot have <content> together with namelist or <param>")
        if el.get("event") is None and el.get("eventexpr") is None and content is None \
                and (typ is None or self.registry.processor_type(typ) == "http://www.w3.org/TR/scxml/#SCXMLEventProcessor"):
            self.problem(el, "<send> needs event or eventexpr")
        return Send(
            event=el.get("event"), eventexpr=self.expr(el, "eventexpr"),
            target=el.get("target"), targetexpr=self.expr(el, "targetexpr"),
            type=typ, typeexpr=self.expr(el, "typeexpr"),
            id=el.get("id"), idlocation=self.location(el, "idlocation"),
            delay=delay, delayexpr=self.expr(el, "delayexpr"),
            namelist=namelist, params=params, content=content, line=el.sourceline or 0,
        )

    def _invoke(self, el: etree._Element, state: StateNode) -> InvokeDef:
        self._check_children(el, {"param", "content", "finalize"})
        for pair in (("type", "typeexpr"), ("src", "srcexpr"), ("id", "idlocation")):
            self._exclusive(el, *pair)
        typ = el.get("type")
        if typ is not None and self.registry.invoker_type(typ) is None:
            self.problem(el, f"unknown invoke type {typ!r}")
        content = self._content(el, allow_document=True)
        if content is not None and (el.get("src") is not None or el.get("srcexpr") is not None):
            self.problem(el, "<invoke> cannot have both src and <content>")
        finalize: tuple[Action, ...] = ()
        for child in el:
            if is_scxml(child) and local_name(child)[1] == "finalize":
                finalize = self.block(child)
        src = el.get("src")
        if src is not None:
            try:
                path = _local_file(src, self.base_dir)
                if not os.path.exists(path):
                    self.problem(el, f"invoke src {src!r} does not exist", deferred=True)
            except ExecutionError as e:
                self.problem(el, str(e), deferred=True)
        autoforward = el.get("autoforward", "false")
        if autoforward not in ("true", "false"):
            self.problem(el, f"autoforward must be 'true' or 'false', not {autoforward!r}")
        self._invoke_order += 1
        return InvokeDef(
            state_id=state.id, type=typ, typeexpr=self.expr(el, "typeexpr"),
            src=src, srcexpr=self.expr(el, "srcexpr"),
            id=el.get("id"), idlocation=self.location(el, "idlocation"),
            namelist=self.namelist(el), params=self._params(el), content=content,
            autoforward=autoforward == "true", finalize=finalize, order=self._invoke_order,
            line=el.sourceline or 0, column=self.col(el),
        )

    def _donedata(self, el: etree._Element) -> DoneData:
        self._check_children(el, {"param", "content"})
        return DoneData(self.namelist(el), self._params(el), self._content(el))

    def _datamodel(self, el: etree._Element) -> list[DataDecl]:
        out = []
        for child in el:
            _, name = local_name(child)
            if not is_scxml(child) or name != "data":
                self.problem(child, f"<{name}> is not allowed inside <datamodel>")
                continue
            did = child.get("id")
            if not did:
                self.problem(child, "<data> needs an id")
                continue
            self._exclusive(child, "expr", "src")
            decl = DataDecl(did, line=child.sourceline or 0, column=self.col(child))
            if child.get("expr") is not None:
                decl.expr = self.expr(child, "expr")
                if len(child) or (child.text or "").strip():
                    self.problem(child, "<data> has both expr and content")
            elif child.get("src") is not None:
                try:
                    decl.value_factory = load_src(child.get("src"), self.base_dir)
                except ExecutionError as e:
                    decl.error = f"line {decl.line}: data {did!r}: {e}"
                    self.problem(child, f"data {did!r}: {e}", deferred=True)
            else:
                decl.value_factory = self._inline_value(child)
            out.append(decl)
        return out


def _prepare_transition(t: Transition) -> None:
    """Work out the transition domain once when no history state can change it."""
    t.history_free = all(s.kind != HISTORY for s in t.targets)
    if t.history_free and t.targets:
        t.static_domain = transition_domain(t, t.targets)


def index_columns(root: etree._Element, text: str) -> dict[etree._Element, int]:
    """Columns of start tags: lxml keeps only lines, and authors want both."""
    lines = text.splitlines()
    cursor: dict[int, int] = {}
    columns: dict[etree._Element, int] = {}
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        line = el.sourceline or 0
        name = local_name(el)[1]
        needle = f"<{el.prefix}:{name}" if el.prefix else f"<{name}"
        # A start tag spread over lines is reported on its last line; look back a few lines.
        for ln in range(line, max(line - 20, 0), -1):
            if not 0 < ln <= len(lines):
                continue
            text_line = lines[ln - 1]
            pos = text_line.find(needle, cursor.get(ln, 0))
            while pos >= 0 and text_line[pos + len(needle): pos + len(needle) + 1] not in ("", " ", ">", "/", "\t"):
                pos = text_line.find(needle, pos + 1)
            if pos >= 0:
                cursor[ln] = pos + 1
                columns[el] = pos + 1
                break
    return columns


def _local_file(src: str, base_dir: str | None) -> str:
    from .values import resolve_src

    return resolve_src(src, base_dir)


def compile_document(
    text: str | bytes,
    *,
    source: str = "<string>",
    base_dir: str | None = None,
    strict: bool = False,
    registry: Registry | None = None,
    default_datamodel: str = "python",
    limits: bool = True,
) -> Document:
    """Parse and compile an SCXML document; raises ``DocumentError`` listing every problem.

    ``limits=False`` (a version the store already holds): a document beyond one of the engine's
    bounds (``Problem.limit``) still compiles, the problem listed in ``doc.problems``; see
    ``over_limits``."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as e:
        line, col = e.position if e.position else (e.lineno or 0, e.offset or 0)
        raise DocumentError([Problem(source, line or 0, col or 0, f"malformed XML: {e.msg}")]) from None
    compiler = Compiler(source, base_dir, registry or DEFAULT_REGISTRY, default_datamodel)
    decoded = raw.decode("utf-8", errors="replace")
    compiler.columns = index_columns(root, decoded)
    doc = compiler.compile_root(root, decoded)
    for _, target, el in compiler._pending_targets:
        missing = [tid for tid in target.split() if tid not in compiler._by_id]
        compiler.problem(el, f"transition target {', '.join(repr(m) for m in missing)} does not exist")
    for s in doc.states:
        _check_initial(compiler, s)
    problems = compiler.problems if limits else [p for p in compiler.problems if not p.limit]
    fatal = [p for p in problems if strict or not p.deferred]
    if fatal:
        raise DocumentError(sorted(problems if strict else fatal, key=lambda p: p.line))
    if not limits:
        doc.problems.extend(p for p in compiler.problems if p.limit)
    doc.content_hash = hashlib.sha256(raw).hexdigest()
    return doc


def over_limits(doc: Document) -> list[Problem]:
    """The engine's bounds a document compiled with ``limits=False`` goes beyond (none: it is
    fit to start new sessions)."""
    return [p for p in doc.problems if p.limit]


def _check_initial(compiler: Compiler, s: StateNode) -> None:
    t = s.initial
    if t is None:
        return
    for target in t.targets:
        if s not in target.ancestor_set:
            compiler.problems.append(Problem(
                compiler.source, s.line, s.column,
                f"initial state {target.id!r} of {s.id!r} is not a descendant of it",
            ))


def load_document(path: str, **kw: Any) -> Document:
    """Compile a document file; relative ``src`` references resolve beside it."""
    with open(path, "rb") as f:
        raw = f.read()
    kw.setdefault("source", path)
    kw.setdefault("base_dir", os.path.dirname(os.path.abspath(path)))
    return compile_document(raw, **kw)
