"""The JavaScript every session context starts with: system variables, ``In``, the value
crossings, and (compiled on first need) the tagged codec and the XML DOM.

It lives in JavaScript because a context with a CPU time limit refuses calls into Python: what
a flow's code may reach must already be inside the context. Everything it defines hangs off one
frozen, non-enumerable global, ``__scxml``, so it is neither the author's data nor replaceable.
Building a context is on the path of every session's start and of every event of a session that
had to let its context go, and QuickJS compiles the prelude anew in each (the binding cannot load
bytecode): so the part compiled at once is small and has no comments; plain JSON goes through the
engine's own ``JSON``; the codec and the DOM (``CODEC_LOADER``) are evaluated by the session's
datamodel in the few contexts whose values need them (``EcmaData._load_codec``).

The tagged encoding is JSON in which a few objects ``{"$t": tag, ...}`` stand for what JSON
cannot say: ``u`` undefined, ``n`` NaN/Infinity/-0, ``date``, ``re``, ``map``, ``set``, ``big``,
``fn`` (function source), ``dom`` (an XML node as a tree), ``o`` (an object that itself has a
``$t`` key, as key/value pairs), ``d``/``r`` (an object reached more than once: defined once,
referred to after; cycles included) and ``ref`` (an object of this context handed out by ``out``
and given back in the same event).
"""

# The XML DOM flows get for XML <data> and <content>: getElementsByTagName, getAttribute, ...
DOM_JS = r"""(function (hasOwn) {
"use strict";
function XmlElement(name, ns, attrs, children) {
  this.nodeType = 1;
  this.nodeName = this.tagName = name;
  var colon = name.indexOf(":");
  this.localName = colon < 0 ? name : name.slice(colon + 1);
  this.namespaceURI = ns === undefined ? null : ns;
  this.attributes = attrs;
  this.childNodes = children;
}
function XmlText(text) { this.nodeType = 3; this.nodeName = "#text"; this.nodeValue = this.data = text; }
function XmlDocument(root) {
  this.nodeType = 9; this.nodeName = "#document"; this.documentElement = root; this.childNodes = [root];
}
function matches(el, name) { return name === "*" || el.tagName === name || el.localName === name; }
function collect(node, name, out) {
  var kids = node.childNodes;
  for (var i = 0; i < kids.length; i++) {
    var k = kids[i];
    if (k.nodeType === 1) { if (matches(k, name)) out.push(k); collect(k, name, out); }
  }
  return out;
}
function textOf(node) {
  if (node.nodeType === 3) return node.data;
  var s = "";
  for (var i = 0; i < node.childNodes.length; i++) s += textOf(node.childNodes[i]);
  return s;
}
function esc(s, attr) {
  s = String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return attr ? s.replace(/"/g, "&quot;") : s;
}
function serialize(node) {
  if (node.nodeType === 3) return esc(node.data, false);
  if (node.nodeType === 9) return serialize(node.documentElement);
  var s = "<" + node.tagName;
  for (var a in node.attributes) {
    if (hasOwn.call(node.attributes, a)) s += " " + a + '="' + esc(node.attributes[a], true) + '"';
  }
  if (!node.childNodes.length) return s + "/>";
  s += ">";
  for (var i = 0; i < node.childNodes.length; i++) s += serialize(node.childNodes[i]);
  return s + "</" + node.tagName + ">";
}
var ElementProto = XmlElement.prototype;
ElementProto.getAttribute = function (n) { return hasOwn.call(this.attributes, n) ? this.attributes[n] : null; };
ElementProto.hasAttribute = function (n) { return hasOwn.call(this.attributes, n); };
ElementProto.setAttribute = function (n, v) { this.attributes[n] = String(v); };
ElementProto.removeAttribute = function (n) { delete this.attributes[n]; };
ElementProto.getElementsByTagName = function (n) { return collect(this, n, []); };
ElementProto.toString = function () { return serialize(this); };
Object.defineProperty(ElementProto, "textContent", {get: function () { return textOf(this); }});
Object.defineProperty(ElementProto, "firstChild", {get: function () { return this.childNodes[0] || null; }});
Object.defineProperty(ElementProto, "children", {get: function () {
  return this.childNodes.filter(function (c) { return c.nodeType === 1; });
}});
XmlText.prototype.toString = function () { return this.data; };
Object.defineProperty(XmlText.prototype, "textContent", {get: function () { return this.data; }});
var DocProto = XmlDocument.prototype;
DocProto.getElementsByTagName = function (n) {
  var root = this.documentElement, out = matches(root, n) ? [root] : [];
  return collect(root, n, out);
};
DocProto.toString = function () { return serialize(this); };
Object.defineProperty(DocProto, "textContent", {get: function () { return null; }});
Object.defineProperty(DocProto, "firstChild", {get: function () { return this.documentElement; }});
function isDom(v) { return v instanceof XmlElement || v instanceof XmlDocument || v instanceof XmlText; }
// tree: [name, ns or null, {attrs}, [children: string | tree]]
function fromTree(t) {
  if (typeof t === "string") return new XmlText(t);
  var kids = [];
  for (var i = 0; i < t[3].length; i++) kids.push(fromTree(t[3][i]));
  return new XmlElement(t[0], t[1] === null ? undefined : t[1], t[2], kids);
}
function toTree(n) {
  if (n.nodeType === 3) return String(n.data);
  if (n.nodeType === 9) return toTree(n.documentElement);
  var kids = [], attrs = {};
  for (var a in n.attributes) if (hasOwn.call(n.attributes, a)) attrs[a] = String(n.attributes[a]);
  for (var i = 0; i < n.childNodes.length; i++) kids.push(toTree(n.childNodes[i]));
  return [n.tagName, n.namespaceURI, attrs, kids];
}

return {isDom: isDom, fromTree: fromTree, toTree: toTree, XmlDocument: XmlDocument};
})"""

# encode/decode of the tagged JSON above.
CODEC_JS = r"""(function (G, hasOwn, S, loadDom) {
"use strict";
function isDom(v) { return S.dom !== null && S.dom.isDom(v); }
function encode(top, names) {
  var seen = new Map(), ids = new Map(), next = 0, tagged = false;
  function count(v) {
    if (v === null || typeof v !== "object" || isDom(v)) return;
    var c = seen.get(v);
    if (c !== undefined) { seen.set(v, c + 1); return; }
    seen.set(v, 1);
    if (v instanceof Map) v.forEach(function (x, k) { count(k); count(x); });
    else if (v instanceof Set) v.forEach(count);
    else if (!(v instanceof Date) && !(v instanceof RegExp)) {
      var ks = Object.keys(v);
      for (var i = 0; i < ks.length; i++) count(v[ks[i]]);
    }
  }
  function e(v) {
    switch (typeof v) {
      case "string": case "boolean": return v;
      case "number":
        if (v !== v || v === Infinity || v === -Infinity || (v === 0 && 1 / v < 0)) {
          tagged = true; return {$t: "n", v: v === 0 ? "-0" : String(v)};
        }
        return v;
      case "undefined": case "symbol": tagged = true; return {$t: "u"};
      case "bigint": tagged = true; return {$t: "big", v: String(v)};
      case "function": tagged = true; return {$t: "fn", v: Function.prototype.toString.call(v)};
    }
    if (v === null) return null;
    if (isDom(v)) { tagged = true; return {$t: "dom", v: S.dom.toTree(v), doc: v.nodeType === 9}; }
    if (seen.get(v) > 1) {
      tagged = true;
      var id = ids.get(v);
      if (id !== undefined) return {$t: "r", i: id};
      id = next++;
      ids.set(v, id);
      return {$t: "d", i: id, v: body(v)};
    }
    return body(v);
  }
  function body(v) {
    var i, out;
    if (Array.isArray(v)) {
      out = new Array(v.length);
      for (i = 0; i < v.length; i++) out[i] = e(v[i]);
      return out;
    }
    if (v instanceof Date) { tagged = true; return {$t: "date", v: v.getTime()}; }
    if (v instanceof RegExp) { tagged = true; return {$t: "re", s: v.source, f: v.flags}; }
    if (v instanceof Map) {
      tagged = true; out = [];
      v.forEach(function (x, k) { out.push([e(k), e(x)]); });
      return {$t: "map", v: out};
    }
    if (v instanceof Set) {
      tagged = true; out = [];
      v.forEach(function (x) { out.push(e(x)); });
      return {$t: "set", v: out};
    }
    var ks = Object.keys(v);
    if (hasOwn.call(v, "$t")) {
      tagged = true; out = [];
      for (i = 0; i < ks.length; i++) out.push([ks[i], e(v[ks[i]])]);
      return {$t: "o", v: out};
    }
    out = {};
    for (i = 0; i < ks.length; i++) out[ks[i]] = e(v[ks[i]]);
    return out;
  }
  var result;
  if (names) {
    for (var n = 0; n < names.length; n++) count(G[names[n]]);
    result = {};
    for (n = 0; n < names.length; n++) result[names[n]] = e(G[names[n]]);
  } else {
    count(top);
    result = e(top);
  }
  return ((tagged ? "T" : "J") + JSON.stringify(result)).slice(0);  // a rope the binding cannot read, flattened
}

function decode(text) {
  var defs = [];
  function shell(x) {
    if (Array.isArray(x)) return [];
    if (x !== null && typeof x === "object") {
      if (x.$t === "map") return new Map();
      if (x.$t === "set") return new Set();
      if (x.$t === undefined || x.$t === "o") return {};
    }
    return undefined;
  }
  function fill(target, x) {
    var i;
    if (Array.isArray(x)) { for (i = 0; i < x.length; i++) target[i] = d(x[i]); return target; }
    if (x.$t === "map") { for (i = 0; i < x.v.length; i++) target.set(d(x.v[i][0]), d(x.v[i][1])); return target; }
    if (x.$t === "set") { for (i = 0; i < x.v.length; i++) target.add(d(x.v[i])); return target; }
    if (x.$t === "o") { for (i = 0; i < x.v.length; i++) target[x.v[i][0]] = d(x.v[i][1]); return target; }
    for (var k in x) if (hasOwn.call(x, k)) target[k] = d(x[k]);
    return target;
  }
  function d(x) {
    if (x === null || typeof x !== "object") return x;
    var t = Array.isArray(x) ? undefined : x.$t;
    switch (t) {
      case undefined: case "map": case "set": case "o": return fill(shell(x), x);
      case "u": return undefined;
      case "n": return Number(x.v);
      case "date": return new Date(x.v === null ? NaN : x.v);
      case "re": return new RegExp(x.s, x.f);
      case "big": return BigInt(x.v);
      case "fn":
        try { return (0, eval)("(" + x.v + ")"); } catch (err) { return undefined; }
      case "dom": var dom = loadDom(), node = dom.fromTree(x.v); return x.doc ? new dom.XmlDocument(node) : node;
      case "ref": return S.refs[x.v];
      case "r": return defs[x.i];
      case "d":
        var target = shell(x.v);
        if (target === undefined) { defs[x.i] = d(x.v); return defs[x.i]; }
        defs[x.i] = target;
        return fill(target, x.v);
    }
    return fill({}, x);
  }
  return d(JSON.parse(text));
}

return {encode: encode, decode: decode};
})"""

# Comments of the core are here, not in it (it is compiled in every context):
# - state: the system variables' values; S.refs: objects out() handed over in this event (kind 4
#   gives them back); S.codec: the tagged codec once Python loaded it (CODEC_LOADER), else null;
#   S.wait: the value out() could not encode without the codec, until resume() is called.
# - isPlain: every value plain JSON (no undefined, NaN, -0, Date, Map, function, DOM, class
#   instance, "$t" key, shared or cyclic object); else the tagged codec is needed.
# - encode answers null when the codec is needed and not loaded: out() then keeps the value and
#   answers "C", save/saveSome/get answer null; Python loads the codec and asks again.
# - value kinds: 0 the value itself; 1 tagged JSON; 2 undefined; 3 plain JSON; 4 an object out()
#   handed over; 5 the object of _event at a path ("data.target"): Python read it itself
#   (local.py) and gives the event's own object where the flow could see it shared; share() puts
#   such objects into variables ("name:data.target ..."). Python loads the codec before it sends
#   kind 1 or tagged text, unless its only tags are references to objects of this event (parse()
#   takes those without the codec).
# - userNames: globals are only ever added (a flow cannot delete a var), so the list changes
#   with the count; or when load() gives a value to a name of the fresh context's (a flow's
#   <data id="Math">), which claim() makes the flow's own from then on, so it is saved.
# - ("..." + x).slice(0) flattens a rope the binding cannot read.
# - The prelude's value is a function that hands Python the functions of __scxml by name: a call,
#   where evaluating "__scxml.name" would compile a script each time.
_CORE_JS = r"""(function (G) {
"use strict";
var hasOwn = Object.prototype.hasOwnProperty, getProto = Object.getPrototypeOf;
var state = {event: undefined, sid: undefined, name: undefined, io: undefined, active: Object.create(null)};
var S = {refs: [], dom: null, codec: null, wait: undefined};
function readOnly(name, get) {
Object.defineProperty(G, name, {get: get, enumerable: false, configurable: false,
set: function () { throw new TypeError(name + " is a read-only system variable"); }});
}
readOnly("_event", function () { return state.event; });
readOnly("_sessionid", function () { return state.sid; });
readOnly("_name", function () { return state.name; });
readOnly("_ioprocessors", function () { return state.io; });
readOnly("_x", function () { return undefined; });
Object.defineProperty(G, "In", {value: function In(id) { return state.active[id] === true; },
writable: false, enumerable: false, configurable: false});
function isPlain(v, seen) {
var t = typeof v;
if (t === "string" || t === "boolean" || v === null) return true;
if (t === "number") return v === v && v !== Infinity && v !== -Infinity && !(v === 0 && 1 / v < 0);
if (t !== "object" || seen.has(v)) return false;
seen.add(v);
var proto = getProto(v), i;
if (proto === Array.prototype) {
for (i = 0; i < v.length; i++) if (!(i in v) || !isPlain(v[i], seen)) return false;
return true;
}
if (proto !== Object.prototype && proto !== null) return false;
if (hasOwn.call(v, "$t") || typeof v.toJSON === "function") return false;
var keys = Object.keys(v);
for (i = 0; i < keys.length; i++) if (!isPlain(v[keys[i]], seen)) return false;
return true;
}
function plain(top) { return isPlain(top, new Set()) ? JSON.stringify(top) : null; }
function encode(v) { var p = plain(v); return p !== null ? "J" + p : S.codec !== null ? S.codec.encode(v) : null; }
function out(v) {
var t = typeof v;
if (t === "boolean") return v;
if (t === "number" && v === v && v !== Infinity && v !== -Infinity && !(v === 0 && 1 / v < 0)) return v;
if (t === "string" && v.indexOf("\0") < 0) return ("S" + v).slice(0);
if (v === null) return "N";
var text = encode(v);
if (text === null) { S.wait = v; return "C"; }
if (t === "object" && S.refs.length < 10000) {
var proto = getProto(v);
if (proto === Object.prototype || proto === Array.prototype || proto === null) {
S.refs.push(v);
return ("R" + (S.refs.length - 1) + ":" + text).slice(0);
}
}
return text;
}
function fromEvent(path) {
var v = state.event, parts = path.split(".");
for (var i = 0; i < parts.length; i++) v = v[parts[i]];
return v;
}
function value(kind, payload) {
return kind === 0 ? payload : kind === 3 ? JSON.parse(payload) : kind === 4 ? S.refs[payload]
: kind === 2 ? undefined : kind === 5 ? fromEvent(payload) : S.codec.decode(payload);
}
function ref(k, v) { return v !== null && typeof v === "object" && v.$t === "ref" ? S.refs[v.v] : v; }
function parse(text) {
return text.indexOf('"$t"') < 0 ? JSON.parse(text) : S.codec !== null ? S.codec.decode(text) : JSON.parse(text, ref);
}
function saved(names) {
var all = {};
for (var i = 0; i < names.length; i++) all[names[i]] = G[names[i]];
var p = plain(all);
return p !== null ? ("J" + p).slice(0) : S.codec !== null ? S.codec.encode(undefined, names) : null;
}
var baseline = null, namesCache = null, namesCount = -1;
function claim(name) {
if (baseline[name]) { delete baseline[name]; namesCount = -1; }
}
function userNames() {
var all = Object.getOwnPropertyNames(G);
if (all.length === namesCount) return namesCache;
var names = [];
for (var i = 0; i < all.length; i++) {
var n = all[i];
if (!baseline[n] && n.slice(0, 2) !== "__") names.push(n);
}
namesCache = names; namesCount = all.length;
return names;
}
var api = {
out: out,
value: value,
resume: function () { var v = S.wait; S.wait = undefined; return out(v); },
useCodec: function (make, makeDom) {
function loadDom() { if (S.dom === null) S.dom = makeDom(hasOwn); return S.dom; }
if (S.codec === null) S.codec = make(G, hasOwn, S, loadDom);
},
init: function (sid, name, io) { state.sid = sid; state.name = name; state.io = Object.freeze(parse(io)); },
setIn: function (ids) {
var active = Object.create(null), list = ids ? ids.split(" ") : [];
for (var i = 0; i < list.length; i++) active[list[i]] = true;
state.active = active;
},
setEvent: function (name, type, sendid, origin, origintype, invokeid, kind, payload, raw) {
S.refs = [];
var ev = {name: name, type: type, sendid: sendid === null ? undefined : sendid,
origin: origin === null ? undefined : origin, origintype: origintype === null ? undefined : origintype,
invokeid: invokeid === null ? undefined : invokeid, data: value(kind, payload)};
if (raw !== null) ev.raw = raw;
state.event = Object.freeze(ev);
},
has: function (name) { return !baseline[name] && name.slice(0, 2) !== "__" && hasOwn.call(G, name); },
get: function (name) { return encode(G[name]); },
save: function () { return saved(userNames()); },
names: function () { return userNames().join(" "); },
saveSome: function (text) { return saved(text.split(" ")); },
load: function (text, undefinedNames) {
var values = parse(text);
for (var k in values) if (hasOwn.call(values, k)) { G[k] = values[k]; claim(k); }
if (undefinedNames) {
var names = undefinedNames.split(" ");
for (var i = 0; i < names.length; i++) { G[names[i]] = undefined; claim(names[i]); }
}
},
share: function (namesPaths) {
var items = namesPaths.split(" ");
for (var i = 0; i < items.length; i++) {
var colon = items[i].indexOf(":");
G[items[i].slice(0, colon)] = fromEvent(items[i].slice(colon + 1));
}
}
};
Object.defineProperty(G, "__scxml", {value: Object.freeze(api), writable: false, enumerable: false,
configurable: false});
baseline = Object.create(null);
var names = Object.getOwnPropertyNames(G);
for (var i = 0; i < names.length; i++) baseline[names[i]] = true;
baseline._genesys = true;
return function (name) { return api[name]; };
})(globalThis);
"""

PRELUDE = _CORE_JS
# What Python evaluates in a context the first time a value needs the tagged codec (and with it,
# the XML DOM, compiled on its own first use): most contexts never need either.
CODEC_LOADER = f"__scxml.useCodec({CODEC_JS}, {DOM_JS})"
