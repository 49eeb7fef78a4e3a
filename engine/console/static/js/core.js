// The console's shell: the API client, DOM building without HTML strings, pages, menu, messages.
//
// Every value shown comes from the engine and much of it from customers (callback keys, numbers)
// or clients: it is only ever set as text (h() makes text nodes), never parsed as HTML. The
// Content-Security-Policy forbids inline scripts and styles, so nothing here relies on them.

export class ApiFailure extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export const session = { name: "", role: "", csrf: "", may: {} };
const listeners = { signedOut: [] };

export function may(capability) {
  return !capability || session.may[capability] === true;
}

function query(params) {
  if (!params) return "";
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// One call of the engine's API with the session cookie; changes carry the CSRF token.
// body: an object (sent as JSON) or a string (sent as `type`, text/plain by default).
export async function api(method, path, body, options = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = session.csrf;
  let payload;
  if (typeof body === "string") {
    payload = body;
    headers["Content-Type"] = options.type || "text/plain";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let answer;
  try {
    answer = await fetch(path + query(options.query), {
      method, headers, body: payload, credentials: "same-origin", cache: "no-store",
    });
  } catch (e) {
    throw new ApiFailure(0, "the engine cannot be reached: " + e.message, null);
  }
  const type = answer.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await answer.json().catch(() => null) : await answer.text();
  if (!answer.ok) {
    const message = data && data.message ? data.message : `${answer.status} ${answer.statusText}`;
    if (answer.status === 401 && !options.quiet401) listeners.signedOut.forEach((fn) => fn(message));
    throw new ApiFailure(answer.status, message, data);
  }
  return data;
}

export function onSignedOut(fn) {
  listeners.signedOut.push(fn);
}

// -- DOM building ------------------------------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
const SVG_TAGS = new Set(["svg", "g", "rect", "line", "path", "text", "title", "defs", "marker", "polyline", "circle", "tspan"]);
const SAFE_URL = /^(#|\/(?!\/)|https?:\/\/|mailto:|blob:)/i;

// h("a", {href: "#/x", class: "btn", onclick: fn, dataset: {test: "x"}}, "text", child, [more])
export function h(tag, attrs, ...children) {
  const el = SVG_TAGS.has(tag) ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key.startsWith("on") || key === "style" || key === "srcdoc") {
      throw new Error(`h(): attribute ${key} is not allowed`);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if ((key === "href" || key === "src" || key === "action") && !SAFE_URL.test(String(value))) {
      el.setAttribute(key, "#");
    } else if (key === "value" && "value" in el) {
      el.value = String(value);
    } else if (key === "checked" || key === "disabled" || key === "selected" || key === "hidden" || key === "required") {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// A value as text: objects as compact JSON, nothing as an em dash.
export function text(value) {
  if (value === undefined || value === null || value === "") return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function formatTime(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h("span", {}, String(iso));
  const pad = (n) => String(n).padStart(2, "0");
  const shown = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h("time", { datetime: iso, title: iso + " (UTC)" }, shown);
}

// columns: [{label, value: (row) => node|string, class?}]; rows: array; empty: the text when none.
export function table(columns, rows, { empty = "Nothing to show.", test } = {}) {
  if (!rows.length) return h("p", { class: "empty", dataset: test ? { test: test + "-empty" } : undefined }, empty);
  return h("div", { class: "table-wrap" }, h("table", { dataset: test ? { test } : undefined },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => {
      const v = c.value(row);
      return h("td", { class: c.class }, v instanceof Node ? v : text(v));
    }))))));
}

// A labelled form field; `input` is an element with an id (one is made when missing).
let fieldCount = 0;
export function field(label, input, help) {
  if (!input.id) input.id = "f" + ++fieldCount;
  const helpId = help ? input.id + "-help" : undefined;
  if (helpId) input.setAttribute("aria-describedby", helpId);
  return h("div", { class: "field" },
    h("label", { for: input.id }, label), input, help ? h("p", { class: "help", id: helpId }, help) : null);
}

export function button(label, onclick, { kind = "", test, type = "button", disabled = false } = {}) {
  return h("button", { type, class: kind, onclick, disabled, dataset: test ? { test } : undefined }, label);
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

export function pageHeader(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", {}, title), h("div", { class: "actions" }, ...actions));
}

// "Showing 1–50 of 230" with previous/next; go(offset) loads another page.
export function pager(total, limit, offset, go) {
  if (!total && offset === 0) return h("div", { class: "pager", dataset: { test: "pager" }, hidden: true });
  const last = Math.min(offset + limit, total);
  return h("div", { class: "pager", dataset: { test: "pager" } },
    h("span", {}, total ? `Showing ${offset + 1}–${last} of ${total}` : "None"),
    button("Previous", () => go(Math.max(0, offset - limit)), { disabled: offset === 0, test: "prev" }),
    button("Next", () => go(offset + limit), { disabled: last >= total, test: "next" }));
}

// -- messages ----------------------------------------------------------------------------------
export function toast(message, kind = "ok") {
  const box = document.getElementById("toasts");
  const note = h("div", { class: "toast " + kind, role: kind === "error" ? "alert" : "status", dataset: { test: "toast-" + kind } },
    h("span", {}, message), h("button", { type: "button", class: "close", "aria-label": "Dismiss", onclick: () => note.remove() }, "×"));
  box.appendChild(note);
  setTimeout(() => note.remove(), kind === "error" ? 12000 : 5000);
}

// Runs an action, reports its result as a message; returns the action's answer or undefined.
export async function attempt(action, okMessage) {
  try {
    const result = await action();
    if (okMessage) toast(typeof okMessage === "function" ? okMessage(result) : okMessage, "ok");
    return result;
  } catch (e) {
    toast(e.message || String(e), "error");
    return undefined;
  }
}

// -- pages and menu ----------------------------------------------------------------------------
const routes = [];
const entries = [];
let cleanups = [];

// pattern: "callbacks/:id"; render(params, main) may return a function run when the page changes.
export function route(pattern, render) {
  routes.push({ parts: pattern.split("/"), render });
}

export function menu(group, label, hash, capability) {
  entries.push({ group, label, hash, capability });
}

// Calls fn now and every `ms` while the page is shown (one call at a time).
export function poll(fn, ms) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { if (!(e instanceof ApiFailure && e.status === 401)) console.warn(e); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  const stop = () => { stopped = true; clearTimeout(timer); };
  cleanups.push(stop);
  return stop;
}

export function onLeave(fn) {
  cleanups.push(fn);
}

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function match(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  for (const r of routes) {
    if (r.parts.length !== parts.length) continue;
    const params = {};
    if (r.parts.every((p, i) => (p.startsWith(":") ? ((params[p.slice(1)] = parts[i]), true) : p === parts[i]))) {
      return { render: r.render, params };
    }
  }
  return null;
}

export function drawMenu() {
  const nav = clear(document.getElementById("menu"));
  const groups = new Map();
  for (const e of entries.filter((x) => may(x.capability))) {
    if (!groups.has(e.group)) groups.set(e.group, []);
    groups.get(e.group).push(e);
  }
  for (const [group, items] of groups) {
    nav.appendChild(h("div", { class: "menu-group" }, h("h2", {}, group),
      h("ul", {}, items.map((e) => h("li", {}, h("a", { href: e.hash, dataset: { test: "menu-" + e.hash.replace(/^#\//, "").replace(/\//g, "-") } }, e.label))))));
  }
}

function firstPage() {
  const e = entries.find((x) => may(x.capability));
  return e ? e.hash : "#/";
}

export async function render() {
  cleanups.forEach((fn) => fn());
  cleanups = [];
  const main = clear(document.getElementById("main"));
  if (!location.hash || location.hash === "#/" || location.hash === "#") {
    location.replace(firstPage());
    return;
  }
  document.querySelectorAll("#menu a").forEach((a) => {
    const here = location.hash === a.getAttribute("href") || location.hash.startsWith(a.getAttribute("href") + "/");
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  const found = match(location.hash);
  if (!found) {
    main.appendChild(pageHeader("Not found"));
    main.appendChild(h("p", {}, "There is no page at this address. ", h("a", { href: firstPage() }, "Go to the first page")));
    return;
  }
  // Marked busy until the page's render has finished (readers and tests wait for it to go).
  const busy = h("p", { class: "muted page-loading", "aria-busy": "true", dataset: { test: "page-loading" } }, "Loading…");
  main.appendChild(busy);
  try {
    const cleanup = await found.render(found.params, main);
    if (typeof cleanup === "function") cleanups.push(cleanup);
  } catch (e) {
    main.appendChild(h("p", { class: "form-error", role: "alert", dataset: { test: "page-error" } }, e.message || String(e)));
  } finally {
    busy.remove();
  }
}
