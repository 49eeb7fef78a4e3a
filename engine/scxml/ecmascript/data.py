"""One session's ECMAScript data: a JavaScript context while the session is busy, tagged JSON
text while it waits.

The context is built on first use (prelude, system variables, the saved variables) and let go
when the kind's ``ContextPool`` says so; the text it leaves (``_blob``) is what snapshots store,
so a waiting session holds a few hundred bytes instead of a ~200 KB context.

A snapshot is taken after every macrostep, and asking the context for every variable each time
costs more than the macrostep. So the values this side wrote (``<data>``, ``<assign>`` to a
name, ``<foreach>`` items) are remembered here when they are primitives (``_known``); only the
variables holding objects (``_volatile``: the flow may change them in place) are read back from
the context, and everything only after code that may have changed anything (a ``<script>``, an
expression with an assignment or a call). The configuration
(``In``) and ``_event`` are pushed into the context before code that may read them runs, since a
context with a CPU limit cannot call back into Python. For the same reason ``_genesys.queue``
gets the queue figures pushed before code that may call it, and the platform requests it
recorded are taken out after that code ran and sent as ``<send type="platform">`` sends them
(``PlatformRequests`` of the kind), within the same macrostep.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from ..datamodel import NO_VALUE, SYSTEM_NAMES, Code, Foreign
from ..errors import ExecutionError, SessionLimitError
from ..events import AttrDict
from . import codec
from .code import EXPR, LOCATION
from .local import EVENT, NotHere, plain_copy, truthy
from .ors import ORS_JS
from .prelude import CODEC_LOADER
from .sandbox import INTERRUPTIONS_PER_SECOND, describe, interrupted, new_session_context

if TYPE_CHECKING:
    from .code import JsCode
    from .kind import EcmaScriptDataModel

log = logging.getLogger("engine.scxml")

_generations = itertools.count(1)
IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*$")
RESERVED = frozenset({
    "break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do", "else",
    "enum", "export", "extends", "false", "finally", "for", "function", "if", "import", "in", "instanceof",
    "new", "null", "return", "super", "switch", "this", "throw", "true", "try", "typeof", "var", "void",
    "while", "with", "yield", "let", "static", "implements", "interface", "package", "private", "protected",
    "public", "await", "arguments", "eval",
})
_SHARED_OBJECT = re.compile(r'"\$t":\s*"[dr]"')
_SURROGATE = re.compile("[\ud800-\udfff]")
_FUNCTION_TAG = re.compile(r'"\$t":\s*"fn"')  # a function in tagged text (prelude.py)


class EcmaData:
    """A session's variables in the ecmascript datamodel (the ``DataModel`` port)."""

    __slots__ = ("__weakref__", "_blob", "_blob_plain", "_builtins_changed", "_ctx", "_event", "_event_changed",
                 "_event_pushed", "_fns", "_fresh", "_gen",
                 "_in", "_in_pushed", "_interrupted", "_io", "_kind", "_kn", "_name", "_objects", "_objects_changed",
                 "_packed", "_pending", "_pick", "_queue", "_queue_text", "_saved", "_shared", "_sid", "_volatile",
                 "_with_codec")
    can_hibernate = True

    def __init__(self, kind: EcmaScriptDataModel, system: Mapping[str, Any]):
        self._kind = kind
        self._sid = system.get("_sessionid")
        self._name = system.get("_name")
        self._io = system.get("_ioprocessors")
        self._in = system.get("In")
        self._ctx: Any = None
        self._interrupted: tuple[float, ...] = ()  # monotonic times cpu_seconds stopped code lately
        self._pick: Any = None  # the prelude's functions by name (sandbox.new_session_context)
        self._fns: dict[Any, Any] | None = None
        # Without a context: the variables holding objects, as tagged JSON (the primitives are in
        # _known); a context is built from both.
        self._blob: str | None = None
        self._blob_plain = False  # _blob is codec.plain_json's text (stored_variables)
        self._saved: dict[str, Any] | None = None  # the variables at the last save, while live
        self._fresh = True  # the saved variables are those of the context
        self._kn: Any = {}  # _known's value, or _PACKED
        # (the flow's shared names, this session's values, the shared index of the names)
        self._packed: tuple[tuple[str, ...], list[Any], dict[str, int]] | None = None
        self._known = {}  # None: anything may have changed
        self._volatile: dict[str, None] = {}
        # The object-holding variables as last read from the context (names, text), and whether
        # code that may change an object ran since: if not, a snapshot reads them from the text.
        self._objects: tuple[list[str], str] | None = None
        self._objects_changed = True
        # Values declared but not yet in the context: a session's <data> and start parameters go
        # in with one call, before the first code runs, not one call each.
        self._pending: dict[str, Any] | None = None
        self._gen = 0
        self._event: Any = None
        self._event_pushed = True
        self._in_pushed: str | None = None
        self._queue: Any = None  # the context's _genesys.queue control (ors.ORS_JS), if it has one
        self._queue_text: str | None = None  # the queue figures last pushed into the context
        self._with_codec = False  # the context has the tagged codec (prelude.CODEC_LOADER)
        # Variables holding, as this side set them, a copy of an object of the event being
        # processed (name: its path, "data.target"): where the flow could see that the two are the
        # same object (code in the context, in this event) the context is given the event's own.
        self._shared: dict[str, str] | None = None
        self._event_changed = False  # code that may change objects ran after _event went in
        # Code that may have changed a built-in (Math.floor = ...) ran in the live context: only
        # it answers Math, Date, String... (local.Scope.builtin) until a fresh context is built.
        self._builtins_changed = False

    @property
    def _known(self) -> dict[str, Any] | None:
        """The primitives this side knows, by name (see the module's docstring)."""
        known = self._kn
        if known is _PACKED:
            names, values, _index = self._packed  # type: ignore[misc]
            known = self._kn = dict(zip(names, values, strict=True))
            self._packed = None
        return known

    def _packed_value(self, name: str) -> Any:
        """A packed session's known value of ``name`` (``_ABSENT`` if it has none) without
        unpacking: a macrostep that only reads (a condition, a status event's attributes, the
        callback service at the session's end) leaves it packed, with nothing to pack again."""
        _names, values, index = self._packed  # type: ignore[misc]
        i = index.get(name)
        return _ABSENT if i is None else values[i]

    @_known.setter
    def _known(self, known: dict[str, Any] | None) -> None:
        self._kn = known
        self._packed = None

    def _pack(self) -> None:
        """Keep the known values of a session without a context as a list, their names shared
        by the sessions of the flow: a waiting session held a dict of its own (~1.2 KB for the
        callback flow's 26 variables). Read and written in place (``_packed_value``, ``_set``);
        unpacked only when the names change."""
        known = self._kn
        if type(known) is dict and known:
            names, index = self._kind.shared_index(tuple(known))
            self._packed = (names, list(known.values()), index)
            self._kn = _PACKED

    # ------------------------------------------------------------------ the context
    @property
    def live(self) -> bool:
        """Whether the session holds a JavaScript context now."""
        return self._ctx is not None

    def _context(self) -> Any:
        ctx = self._ctx
        if ctx is None:
            ctx = self._wake()
        self._kind.pool.touch(self)
        return ctx

    def _wake(self) -> Any:
        kind = self._kind
        try:
            ctx, self._pick = new_session_context(kind.limits)
        except Exception as e:
            raise ExecutionError(f"cannot start the script engine: {describe(e, kind.limits)}") from e
        self._ctx = ctx
        self._fns = {}
        self._builtins_changed = False  # a fresh context: until a value that runs code goes in (_tagged)
        self._queue = self._queue_text = self._objects = None
        self._with_codec = False
        self._gen = next(_generations)
        kind.pool.built += 1
        io = {}
        if self._io is not None:
            try:
                io = {k: dict(v) for k, v in self._io.items()}
            except Exception:
                log.exception("session %s: _ioprocessors could not be read", self._sid)
        try:
            self._api("init")(self._sid, self._name, self._tagged(codec.to_json(io)))
            facilities = kind.facilities_json(self._sid)
            if facilities is not None:
                control = ctx.eval(ORS_JS)(facilities, kind.queue_facts is not None)
                if kind.queue_facts is not None:
                    self._queue = control
            if self._blob:
                self._api("load")(self._tagged(self._blob))
            known, pending = self._known, self._pending or {}
            if known:
                self._load({k: v for k, v in known.items() if k not in pending})
        except Exception as e:
            self._ctx = self._fns = self._queue = self._pick = None
            raise ExecutionError(f"cannot restore the session's data: {describe(e, kind.limits)}") from e
        self._fresh = True
        self._event_pushed = self._event is None
        self._in_pushed = None
        return ctx

    def hibernate(self) -> None:
        """Keep the variables as text and let the context go (the pool calls this)."""
        if self._ctx is None:
            return
        try:
            values = self.variables()
            self._learn(values)
            self._keep_objects(values)
        except ExecutionError as e:
            log.error("session %s: its data could not be saved when its context was dropped (%s); "
                      "the variables that can be read one by one are kept", self._sid, e)
            values = self._salvage()
            self._learn(values)  # without a context, _known is never None
            self._keep_objects(values)
        self._ctx = self._fns = self._saved = self._queue = self._objects = self._pick = None
        self._fresh = True
        self._builtins_changed = False  # the changed context is gone; what a new one is given is checked (builtin)

    def _salvage(self) -> dict[str, Any]:
        """The variables that can still be read one by one (the others are lost, and named)."""
        values: dict[str, Any] = {}
        lost = []
        try:
            names = self._api("names")().split()
        except Exception:
            names = []
        for name in names:
            try:
                text = self._api("get")(name)
                if text is None:
                    self._load_codec()
                    text = self._api("get")(name)
                values[name] = codec.loads(text[1:])
            except Exception:
                lost.append(name)
        if lost:
            log.error("session %s: variables lost with its context: %s", self._sid, ", ".join(lost))
        return values

    def _api(self, name: str) -> Any:
        fns = self._fns
        fn = fns.get(name)  # type: ignore[union-attr]
        if fn is None:
            fn = fns[name] = self._pick(name)
        return fn

    def _load_codec(self) -> None:
        """The tagged codec into the context: before tagged text goes in, or when a value coming
        out needs it (the prelude answers "C" or null then, and is asked again)."""
        if not self._with_codec:
            self._ctx.eval(CODEC_LOADER)
            self._with_codec = True

    def _tagged(self, text: str) -> str:
        """``text``, for the context, with the codec loaded first if the text needs it: for tags
        other than references to this event's objects (``codec.to_json`` writes a dict of the
        flow's own with a "$t" key under an "o" tag, so a "ref" tag is always a reference)."""
        if '"$t"' in text:
            if _FUNCTION_TAG.search(text):
                self._builtins_changed = True  # decoding a class runs its static blocks
            if not self._with_codec and text.count('"$t"') != text.count('"$t": "ref"'):
                self._load_codec()
        return text

    def _function(self, key: Any, source: str) -> Any:
        fns = self._fns
        fn = fns.get(key)  # type: ignore[union-attr]
        if fn is None:
            fn = fns[key] = self._ctx.eval(source)  # type: ignore[index]
        return fn

    def _save(self, names: list[str] | None = None) -> str:
        try:
            text = self._api("save")() if names is None else self._api("saveSome")(" ".join(names))
            if text is None:  # a value needs the tagged codec
                self._load_codec()
                text = self._api("save")() if names is None else self._api("saveSome")(" ".join(names))
        except Exception as e:
            raise ExecutionError(f"the variables cannot be saved: {describe(e, self._kind.limits)}") from e
        return text[1:]

    def _collect(self) -> dict[str, Any]:
        """The variables of the live context: the known ones from here, the rest from it."""
        known = self._known
        if known is None:
            values = codec.loads(self._save())
            self._learn(values)
            self._objects = None
            return values
        values = dict(known)
        if self._volatile:
            names = list(self._volatile)
            objects = self._objects
            if objects is None or self._objects_changed or objects[0] != names:
                objects = self._objects = (names, self._save(names))
                self._objects_changed = False
            values.update(codec.loads(objects[1]))
        return values

    def _learn(self, values: Mapping[str, Any]) -> None:
        self._known = {k: _held(v) for k, v in values.items() if _exact(v)}
        self._volatile = {k: None for k, v in values.items() if not _exact(v)}

    def _note(self, name: str, value: Any) -> None:
        """``name`` now holds ``value`` (given from this side)."""
        known = self._kn
        held = _held_exact(value)
        if known is _PACKED:
            if held is _INEXACT and name in self._volatile:
                return  # an object where one was: the packed names stay as they are
            known = self._known
        if known is None:
            return
        if held is not _INEXACT:
            known[name] = held
            self._volatile.pop(name, None)
        else:
            self._volatile[name] = None
            known.pop(name, None)

    def _flush(self) -> None:
        """Put the declared values into the context (built if need be)."""
        pending = self._pending
        self._pending = None
        if self._ctx is None:
            self._wake()
            self._kind.pool.touch(self)  # not otherwise: hibernate() flushes too, leaving the pool
        try:
            self._load(pending)  # type: ignore[arg-type]
        except Exception as e:
            raise ExecutionError(f"data {', '.join(pending or ())}: {describe(e, self._kind.limits)}") from None

    def _load(self, values: dict[str, Any]) -> None:
        """``values`` into the context's variables, with one call."""
        # undefined (a <data> without a value) by name: as a tagged value it would need the codec
        missing = [k for k, v in values.items() if type(v) is Foreign and v.form == UNDEFINED.form]
        if missing:
            values = {k: v for k, v in values.items() if k not in missing}
        self._api("load")(self._tagged(codec.to_json(values, self._gen)), " ".join(missing))

    def _keep_objects(self, values: Mapping[str, Any]) -> None:
        """Keep the variables of ``values`` holding objects as text (a session without a context
        keeps its primitives in ``_known`` alone, and these), and whether it is plain JSON."""
        volatile = self._volatile
        objects = {k: v for k, v in values.items() if k in volatile}
        if not objects:
            self._blob, self._blob_plain = None, False
            return
        text = codec.plain_json(objects)
        self._blob_plain = text is not None
        self._blob = text if text is not None else codec.tagged_json(objects)

    def _prepare_context(self) -> None:
        """A context with every value set in it (for what only a context can do)."""
        if self._ctx is None:
            self._wake()
        if self._pending:
            self._flush()
        self._kind.pool.touch(self)

    def _prepare(self, jc: JsCode) -> None:
        """Build the context if needed and push what ``jc`` may read."""
        if self._ctx is None:
            self._wake()
        if self._pending:
            self._flush()
        self._kind.pool.touch(self)
        if (jc.needs_event or self._shared) and not self._event_pushed:
            self._push_event()
        if self._shared:
            self._share()
        if jc.in_all or jc.in_ids:
            self._push_in(self._kind.in_ids_seen if jc.in_all else jc.in_ids)
        if not jc.pure:
            self._fresh = False
            self._objects_changed = True
            self._builtins_changed = True
            if self._event_pushed:
                self._event_changed = True  # the code may change _event.data's objects in place
            if jc.mode != LOCATION:
                self._known = None
            if self._queue is not None:
                self._push_figures()

    def _share(self) -> None:
        """The variables that hold an object of this event get the event's own (see ``_shared``)."""
        shared, self._shared = self._shared, None
        try:
            self._api("share")(" ".join(f"{name}:{path}" for name, path in shared.items()))  # type: ignore[union-attr]
        except Exception as e:
            raise ExecutionError(f"data {', '.join(shared)}: {describe(e, self._kind.limits)}") from None  # type: ignore[arg-type]
        self._fresh = False
        self._objects_changed = True

    # ------------------------------------------------------------------ answered here (local.Scope)
    def known_value(self, name: str) -> Any:
        known = self._kn
        if known is _PACKED:
            value = self._packed_value(name)
            if value is _ABSENT:
                raise NotHere
            return value
        if known is None or name not in known:
            raise NotHere
        return known[name]

    def event_field(self, path: tuple[str, ...]) -> Any:
        ev = self._event
        if self._event_changed:
            raise NotHere  # code in the context may have changed it: the context's is the one
        if ev is None or path[0] != "data":
            if ev is not None and path == ("name",):
                return ev.name
            raise NotHere
        value = ev.data
        if value is None:
            if len(path) == 1:
                return UNDEFINED
            raise NotHere
        for key in path[1:]:
            if type(value) is not dict and type(value) is not AttrDict:
                raise NotHere
            try:
                value = value[key]
            except KeyError:
                raise NotHere from None  # undefined, or a property of Object.prototype: the context says
        return plain_copy(value, path, ev)

    def builtin(self, name: str) -> None:
        if self._builtins_changed:
            raise NotHere
        known = self._known
        if known is None or name in known or name in self._volatile:
            raise NotHere  # the flow's own variable (<data id="Math">), or names not known here
        # What a context would be given before it answered: a function among it would run code
        # (a class's static block) that could change the built-in.
        if self._ctx is None and self._blob and _FUNCTION_TAG.search(self._blob):
            raise NotHere
        if self._pending and _has_function(self._pending):
            raise NotHere
        ev = self._event
        if not self._event_pushed and ev is not None and _has_function(ev.data):
            raise NotHere

    def _push_figures(self) -> None:
        """The queue figures as they are now, into the context, if they changed since last time."""
        try:
            text = self._kind.queue_facts()  # type: ignore[misc]
        except Exception:
            log.exception("session %s: the queue figures could not be read; the last ones stay", self._sid)
            return
        if text is not self._queue_text:
            try:
                self._queue("figures", text)
            except Exception as e:
                raise ExecutionError(f"the queue figures could not be set: {describe(e, self._kind.limits)}") from e
            self._queue_text = text

    def _send_requests(self, code: Code) -> None:
        """Send the platform requests ``code`` made through ``_genesys.queue``, in order; the
        first one refused (the send budget) is the code's error.execution and the rest are dropped."""
        try:
            text = self._queue("take")
        except Exception as e:
            raise self._failed(code, e) from None
        if not text:
            return
        send = self._kind.platform_requests
        for request, data, request_id in json.loads(text):
            if send is None:
                raise code.fail(f"{request}: no contact-center platform to send it to")
            log.debug("session %s: _genesys.queue request %s %s", self._sid, request, request_id)
            send(self._sid, request, data, request_id, code.line)

    def _fail(self, jc: JsCode, code: Code, error: BaseException) -> NoReturn:
        """``code`` failed: error.execution; what it asked of the platform before it failed is
        sent all the same (as the sends of a ``<script>`` that fails after them are)."""
        failed = self._failed(code, error)
        if self._queue is not None and not jc.pure:
            try:
                self._send_requests(code)
            except ExecutionError as also:
                log.warning("session %s: %s (after %s)", self._sid, also, failed)
        raise failed from None

    def _push_event(self) -> None:
        ev = self._event
        self._event_pushed = True
        self._gen = next(_generations)
        data = ev.data
        kind, payload = (codec.UNDEFINED, None) if data is None else codec.to_js(data)
        try:
            if kind == codec.JSON_TEXT:
                self._load_codec()
                if _FUNCTION_TAG.search(payload):
                    self._builtins_changed = True
            self._api("setEvent")(ev.name, ev.type, ev.sendid, ev.origin, ev.origintype, ev.invokeid, kind, payload,
                                  ev.raw)
        except Exception as e:
            raise ExecutionError(f"_event could not be set: {describe(e, self._kind.limits)}") from e

    def _push_in(self, ids: Any) -> None:
        in_state = self._in
        if in_state is None:
            return
        active = " ".join(i for i in ids if in_state(i))
        if active != self._in_pushed:
            self._api("setIn")(active)
            self._in_pushed = active

    def _failed(self, code: Code, error: BaseException) -> ExecutionError:
        message = describe(error, self._kind.limits)
        if "out of memory" in str(error) and self._ctx is not None:
            self._ctx.gc()
        if interrupted(error):
            # cpu_seconds bounds one evaluation, but one step may run any number of them (a
            # transition's cond after another's, each <onentry>): stopped more than
            # INTERRUPTIONS_PER_SECOND times within a second, the session fails rather than hold
            # the event loop cpu_seconds at a time for as long as it has conditions.
            now = time.monotonic()
            recent = (*(t for t in self._interrupted if now - t < 1.0), now)
            self._interrupted = recent
            if len(recent) > INTERRUPTIONS_PER_SECOND:
                raise SessionLimitError(
                    f"{code.fail(message)}; stopped {len(recent)} times within a second (at most "
                    f"{INTERRUPTIONS_PER_SECOND}; the ecmascript limit cpu_seconds)")
        return code.fail(message)

    # ------------------------------------------------------------------ the DataModel port
    def evaluate(self, expr: Code) -> Any:
        jc = expr.code
        if jc is None:
            raise expr.fail(expr.error or "cannot be evaluated")
        if jc.literal is not None:
            return jc.literal()  # its value is known here: no call into the context
        name = jc.name
        if name is not None:  # a variable this side wrote, unchanged since: no call into the context
            known = self._kn
            if known is _PACKED:
                value = self._packed_value(name)
                if value is not _ABSENT:
                    return value
            elif known is not None and name in known:
                return known[name]
        if jc.local is not None:
            try:
                return jc.local(self)
            except Exception:  # NotHere, or anything this side did not foresee: the context answers
                pass
        self._prepare(jc)
        try:
            fn = self._function(jc.key, jc.value_src if jc.mode == EXPR else jc.cond_src)
            result = fn()
            if result == "C":  # the value needs the tagged codec: the context kept it until then
                self._load_codec()
                result = self._api("resume")()
        except Exception as e:
            self._fail(jc, expr, e)
        if self._queue is not None and not jc.pure:
            self._send_requests(expr)
        return codec.to_python(codec.from_js(result, self._gen))

    def test(self, expr: Code) -> bool:
        jc = expr.code
        if jc is None:
            raise expr.fail(expr.error or "cannot be evaluated")
        if jc.literal is not None:
            truth = _truthy(jc.literal())
            return True if truth is None else truth  # None: an object or array, truthy
        name = jc.name
        if name is not None:
            known = self._kn
            if known is _PACKED:
                value = self._packed_value(name)
            else:
                value = known[name] if known is not None and name in known else _ABSENT
            if value is not _ABSENT:
                truth = _truthy(value)
                if truth is not None:
                    return truth
        if jc.local is not None:
            try:
                return truthy(jc.local(self))
            except Exception:  # NotHere, or anything this side did not foresee: the context answers
                pass
        self._prepare(jc)
        try:
            truth = bool(self._function((jc.key, "cond"), jc.cond_src)())
        except Exception as e:
            self._fail(jc, expr, e)
        if self._queue is not None and not jc.pure:
            self._send_requests(expr)
        return truth

    def execute(self, script: Code) -> None:
        jc = script.code
        if jc is None:
            raise script.fail(script.error or "cannot run")
        self._prepare(jc)
        try:
            self._ctx.eval(jc.script + "\n;void 0")
        except Exception as e:
            self._fail(jc, script, e)
        if self._queue is not None and not jc.pure:
            self._send_requests(script)

    def assign(self, location: Code, value: Any) -> None:
        jc = location.code
        if jc is None or jc.mode != LOCATION:
            raise location.fail(location.error or "not assignable")
        root = jc.root  # of location.text, found when it was compiled
        if root in SYSTEM_NAMES:
            raise location.fail(f"{root} is a read-only system variable")
        known = self._kn
        path = self._event_path(value)
        if known is not None and jc.bare \
                and (root in (self._packed[2] if known is _PACKED else known) or root in self._volatile) \
                and (_exact(value) or (path is not None and not self._overlaps(path))):  # type: ignore[index]
            # A primitive (or a copy of an event's object) to a variable of the flow by its name:
            # it goes in with the next code, as <data> values do, one call for all (what the
            # context would do: set the global).
            self._set(root, value)
            if path is not None:
                if self._shared is None:
                    self._shared = {}
                self._shared[root] = path
            return
        self._prepare(jc)
        if path is not None:
            if not self._event_pushed:
                self._push_event()
            kind, payload = codec.EVENT_PATH, path
        else:
            kind, payload = codec.to_js(value, self._gen)
        try:
            if kind == codec.JSON_TEXT:
                self._load_codec()
            self._function(jc.key, jc.value_src)(kind, payload)
        except Exception as e:
            self._fail(jc, location, e)
        if self._queue is not None and not jc.pure:
            self._send_requests(location)
        text = location.text.strip()
        if IDENTIFIER.match(text):
            self._note(text, value)
        elif self._known is not None:
            if root in self._known or root in self._volatile:
                self._note(root, _CHANGED)  # an object changed in place
            else:
                self._known = None

    def _event_path(self, value: Any) -> str | None:
        """Where in the event being processed ``value`` was read (``local.plain_copy``), if it was."""
        ref = getattr(value, "ref", None) if type(value) is codec.JsDict or type(value) is codec.JsList else None
        if ref is None or ref[0] != EVENT or ref[1] is not self._event:
            return None
        return ".".join(ref[2])

    def _overlaps(self, path: str) -> bool:
        """Whether a variable holds the object at ``path`` of this event, or one inside or around it."""
        for other in (self._shared or {}).values():
            if path == other or path.startswith(other + ".") or other.startswith(path + "."):
                return True
        return False

    def declare(self, name: str, value: Any) -> None:
        self._set(name, UNDEFINED if value is NO_VALUE else value)

    def declare_all(self, values: Mapping[str, Any]) -> None:
        """A new session's start parameters: each primitive goes straight into ``_known``, as
        ``_set`` puts it there for a session without a context (an object goes through ``_set``)."""
        known = self._kn
        if self._ctx is not None or self._volatile or self._shared or type(known) is not dict:
            for name, value in values.items():
                self.declare(name, value)
            return
        for name, value in values.items():
            if type(value) is str and value.isascii():  # most values: held as they are
                known[name] = value
                continue
            if value is NO_VALUE:
                value = UNDEFINED
            held = _held_exact(value)
            if held is _INEXACT:
                self._set(name, value)
            else:
                known[name] = held

    def _set(self, name: str, value: Any) -> None:
        if self._shared:
            self._shared.pop(name, None)
        if self._ctx is None and name not in self._volatile:
            # All a session without a context keeps of a primitive (a context loads _known): the
            # common case (every <data>, start parameter and <assign> of a literal), so done here
            # in one step rather than through _note.
            known = self._kn
            if known is _PACKED:
                held = _held_exact(value)
                _names, values, index = self._packed  # type: ignore[misc]
                i = index.get(name)
                if i is not None and held is not _INEXACT:
                    values[i] = held  # in place: the names stay the flow's shared ones
                    return
                known = self._known  # a new name, or no longer a primitive: the names change
            if known is not None:
                held = _held_exact(value)
                if held is not _INEXACT:
                    known[name] = held
                    return
        if self._pending is None:
            self._pending = {}
        self._pending[name] = value
        self._fresh = False
        if not _primitive(value):
            self._objects_changed = True
        self._note(name, value)

    def set_variable(self, name: str, value: Any) -> None:
        if not IDENTIFIER.match(name) or name in RESERVED or name in SYSTEM_NAMES or self._kind.is_builtin(name):
            raise ExecutionError(f"{name!r} is not a legal variable name")
        self._set(name, value)

    def variable(self, name: str) -> Any:
        known = self._kn
        if known is _PACKED:  # no context: the objects are in the text
            value = self._packed_value(name)
            if value is not _ABSENT:
                return value
            return codec.to_python(self.variables().get(name)) if name in self._volatile else None
        if known is not None:
            if name in known:
                return known[name]
            if name not in self._volatile:
                return None
        if self._pending and self._ctx is not None:
            self._flush()
        if self._ctx is not None and not self._fresh:
            if not self.defines(name):
                return None
            try:
                text = self._api("get")(name)
                if text is None:  # the value needs the tagged codec
                    self._load_codec()
                    text = self._api("get")(name)
                return codec.to_python(codec.loads(text[1:]))
            except Exception as e:
                raise ExecutionError(f"{name}: {describe(e, self._kind.limits)}") from None
        return codec.to_python(self.variables().get(name))

    def defines(self, name: str) -> bool:
        known = self._kn
        if known is _PACKED:
            return name in self._packed[2] or name in self._volatile  # type: ignore[index]
        if known is not None:  # every variable is known by name, its value here or in the context
            return name in known or name in self._volatile
        if self._pending and self._ctx is not None:
            self._flush()
        if self._ctx is not None and not self._fresh:
            return bool(self._api("has")(name))
        return name in self.variables()

    def lookup(self, name: str, default: Any = None) -> Any:
        """A known value read here (packed or not) without the two calls of ``defines`` and
        ``variable``; an object variable, or data only the context knows, as they answer."""
        known = self._kn
        if known is _PACKED:
            i = self._packed[2].get(name)  # type: ignore[index]
            if i is not None:
                return self._packed[1][i]  # type: ignore[index]
            if name not in self._volatile:
                return default
        elif known is not None:
            if name in known:
                return known[name]
            if name not in self._volatile:
                return default
        return self.variable(name) if self.defines(name) else default

    def set_event(self, event: Any) -> None:
        self._event = event
        self._event_pushed = False
        self._shared = None  # the copies are the values now: nothing else can reach the old event
        self._event_changed = False

    def variables(self) -> dict[str, Any]:
        values, text = self._held_variables()
        if text is not None:
            values.update(codec.loads(text))
        return values

    def stored_variables(self) -> tuple[dict[str, Any], str | None]:
        """The primitives, and the objects as the text kept while the session waits when it is
        plain JSON: a snapshot is taken after every macrostep, and parsing that text to have the
        snapshot walk and write its values again was a fifth of a snapshot's cost. Tagged text
        (undefined, NaN, functions, shared objects...) only this side reads: it is parsed."""
        values, text = self._held_variables()
        if text is not None and not self._blob_plain:
            values.update(codec.loads(text))
            return values, None
        return values, text

    def _held_variables(self) -> tuple[dict[str, Any], str | None]:
        """The variables as held now: the values, and the objects' text (``_blob``) of a session
        without a context, or None."""
        if self._ctx is not None:
            if self._pending:
                self._flush()
            if not self._fresh or self._saved is None:
                self._saved = self._collect()
                self._fresh = True
            return dict(self._saved), None
        # No context: the primitives are in _known, the objects in the text (a session whose code
        # this side answered never builds a context). Variables sharing an object are written as a
        # definition and references to it: only the context can replace one of them.
        pending = self._pending
        if pending and self._blob and _SHARED_OBJECT.search(self._blob):
            self._prepare_context()
            return self._held_variables()
        if pending:
            self._pending = None  # its primitives are in _known already (_note)
            if self._blob or not all(_primitive(v) for v in pending.values()):
                objects = codec.loads(self._blob) if self._blob else {}
                objects.update(pending)
                self._keep_objects(objects)
        if self._kn is _PACKED:  # no name changed since the last snapshot
            names, packed, index = self._packed  # type: ignore[misc]
            # The shared index has the names as keys, in order: a copy of it (made in C) with the
            # values put in builds the dict faster than dict(zip(...)), which inserts each name.
            values = index.copy()
            values.update(zip(names, packed, strict=True))
        else:
            values = dict(self._kn)
            self._pack()  # a snapshot is taken at the end of each macrostep: the session may wait now
        return values, self._blob or None

    def restore(self, values: Mapping[str, Any]) -> None:
        if not values:
            return
        if self._shared:
            for name in values:
                self._shared.pop(name, None)
        if self._pending and self._ctx is not None:
            self._flush()
        if self._ctx is not None:
            self._api("load")(self._tagged(codec.to_json(dict(values))))
            self._fresh = False
            self._objects_changed = True
            self._known = None
            return
        merged = self.variables()
        merged.update(values)
        self._learn(merged)
        self._keep_objects(merged)


UNDEFINED = Foreign({codec.TAG: "u"})
_CHANGED = object()  # a value never primitive: "this variable's object changed"
_PACKED = object()  # _kn: the known values are in _packed
_ABSENT = object()  # _packed_value: no known value of that name
_PRIMITIVE_TAGS = frozenset({"u", "n", "big"})


def _truthy(value: Any) -> bool | None:
    """ECMAScript's ToBoolean of a primitive kept here; None when the context must say."""
    t = type(value)
    if t is str or t is bool or t is int or value is None:
        return bool(value)
    if t is float:
        return value == value and value != 0.0
    if t is Foreign:
        return False if value.form.get(codec.TAG) == "u" else None
    return None


def _exact(value: Any) -> bool:
    """A primitive this side knows as the context holds it (see ``_held``): not a string with a
    lone surrogate (the context cannot be given one)."""
    if type(value) is str:
        return value.isascii() or _SURROGATE.search(value) is None
    return _primitive(value)


_INEXACT = object()  # _held_exact: not a value this side knows as the context holds it


def _held_exact(value: Any) -> Any:
    """``_held(value)`` when ``_exact(value)``, else ``_INEXACT``: one call where the hot paths
    (every declared, set and assigned value) made two, the common types tested first."""
    t = type(value)
    if t is str:
        return value if value.isascii() or _SURROGATE.search(value) is None else _INEXACT
    if t is bool or value is None:
        return value
    if t is int:
        return value if -codec.MAX_SAFE_INT < value < codec.MAX_SAFE_INT else _INEXACT
    if t is float:
        return _held(value)
    return value if t is Foreign and _primitive(value) else _INEXACT


_MINUS_ZERO = Foreign({codec.TAG: "n", "v": "-0"})


def _held(value: Any) -> Any:
    """``value`` as the context holds it and hands it out: NaN and infinities go in as null (JSON),
    -0 comes out tagged, and there is one number type, so an integral float is an int."""
    if type(value) is float:
        if not math.isfinite(value):
            return None
        if value == 0.0 and math.copysign(1.0, value) < 0:
            return _MINUS_ZERO
        if value.is_integer() and -codec.MAX_SAFE_INT < value < codec.MAX_SAFE_INT:
            return int(value)
    return value


def _primitive(value: Any) -> bool:
    """A value the context holds as a copy (nothing can change it in place)."""
    t = type(value)
    if t is str or t is bool or t is float or value is None:
        return True
    if t is int:
        return -codec.MAX_SAFE_INT < value < codec.MAX_SAFE_INT
    if t is Foreign:
        form = value.form
        return isinstance(form, dict) and form.get(codec.TAG) in _PRIMITIVE_TAGS
    return False


def _has_function(value: Any) -> bool:
    """Whether ``value`` holds a JavaScript function (a ``Foreign`` the context would evaluate)."""
    t = type(value)
    if t is Foreign:
        return _FUNCTION_TAG.search(json.dumps(value.form)) is not None
    if isinstance(value, dict):
        return any(_has_function(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_function(v) for v in value)
    return False
