// Callbacks (Callbacks > Callbacks): the list of every service's callbacks with filters, search and
// paging; a form for a new one; and a callback's page: its record, the timeline of its states, its
// status events, deliveries and pushes, its session's active states on the flow's chart, and the
// actions Cancel and Reschedule. A callback's keys and values were written by clients and
// customers: they are shown as text only (h() makes text nodes).
import {
  api, button, clear, field, formatTime, go, h, may, menu, pageHeader, pager, poll, route, section, table, text, toast,
} from "../core.js";
import { chartWidth, markActive, stateChart } from "../statechart.js";

menu("Callbacks", "Callbacks", "#/callbacks", "callbacks.read");

const CREATE_BASE = "/genesys/1/service/callback";
const STATES = ["SCHEDULED", "QUEUED", "ROUTING", "PROCESSING", "PAUSED", "COMPLETED"];
const REASONS = ["AGENT_CONNECTED", "CANCELLED", "FAIL_TIMEOUT_TTL", "FAIL_CALL_TO_CUSTOMER", "FAIL_TARGET_NOT_FOUND",
  "FAIL_USER_NO_CONFIRM", "FAIL_ERROR", "PURGED"];
const LIMIT = 25;
const REFRESH_MS = 1500;

// The list's filters outlive the page, so coming back from a callback shows the same list.
const filters = { service: "", state: "", reason: "", number: "", from: "", to: "", q: "", offset: 0 };

// A datetime-local value (the browser's local time) as ISO UTC; "" stays "".
function localToIso(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

// ISO UTC -> the datetime-local value of that moment in the browser's time zone.
function isoToLocal(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// The services a callback can belong to: the admin list when the role reads it, else none (the
// form then takes a typed name).
async function serviceNames() {
  if (!may("services.read")) return [];
  try {
    return (await api("GET", "/admin/services")).services || [];
  } catch (e) {
    return [];
  }
}

function options(values, anyLabel, selected) {
  return [h("option", { value: "" }, anyLabel), ...values.map((v) => h("option", { value: v, selected: v === selected }, v))];
}

function stateBadge(state) {
  return h("span", { class: `state state-${String(state || "").replace(/[^A-Z_]/g, "")}`, dataset: { test: "state" } }, text(state));
}

function callbackLink(id) {
  return h("a", { href: "#/callbacks/" + encodeURIComponent(id), class: "mono", dataset: { test: "callback-link" } }, id);
}

// -- the list ----------------------------------------------------------------------------------
route("callbacks", async (_params, main) => {
  main.appendChild(pageHeader("Callbacks", may("callbacks.write")
    ? h("a", { href: "#/callbacks/new", class: "button primary", role: "button", dataset: { test: "new-callback" } }, "New callback") : null));
  const services = await serviceNames();
  const input = (name, type = "text", extra = {}) => h("input", { name, type, value: filters[name], ...extra });
  const controls = {
    service: services.length ? h("select", { name: "service" }, options(services, "all services", filters.service))
      : input("service", "text", { placeholder: "all services" }),
    state: h("select", { name: "state" }, options(STATES, "any state", filters.state)),
    reason: h("select", { name: "reason" }, options(REASONS, "any reason", filters.reason)),
    number: input("number", "tel", { placeholder: "+15551234567" }),
    from: input("from", "datetime-local"),
    to: input("to", "datetime-local"),
    q: input("q", "search", { placeholder: "id, number or any value", maxlength: 100 }),
  };
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "list-error" } });
  const body = h("div", { dataset: { test: "callback-list" }, "aria-busy": "true" });
  const load = async () => {
    body.setAttribute("aria-busy", "true");
    error.textContent = "";
    const query = {
      service: filters.service, state: filters.state, reason: filters.reason, number: filters.number,
      from: localToIso(filters.from), to: localToIso(filters.to), q: filters.q, limit: LIMIT, offset: filters.offset,
    };
    try {
      const page = await api("GET", "/admin/callbacks", undefined, { query });
      clear(body).append(...[
        table([
          { label: "Created", value: (r) => formatTime(r._created_time) },
          { label: "Callback", value: (r) => callbackLink(r._id) },
          { label: "Service", value: (r) => text(r._service_name) },
          { label: "Number", value: (r) => text(r._customer_number) },
          { label: "State", value: (r) => stateBadge(r._callback_state) },
          { label: "Reason", value: (r) => text(r._callback_reason) },
          { label: "Desired time", value: (r) => formatTime(r._desired_time) },
        ], page.callbacks, { test: "callback-table", empty: "No callback matches." }),
        pager(page.total, LIMIT, filters.offset, (offset) => { filters.offset = offset; load(); }),
        page.total_exact === false ? h("p", { class: "muted" }, `More than ${page.total} match: narrow the filters to see them all.`) : null,
      ].filter(Boolean));
    } catch (e) {
      error.textContent = e.message;
      clear(body);
    }
    body.removeAttribute("aria-busy");
  };
  const search = (event) => {
    event.preventDefault();
    for (const [name, control] of Object.entries(controls)) filters[name] = control.value.trim();
    filters.offset = 0;
    load();
  };
  const reset = () => {
    Object.assign(filters, { service: "", state: "", reason: "", number: "", from: "", to: "", q: "", offset: 0 });
    Object.values(controls).forEach((c) => { c.value = ""; });
    load();
  };
  main.appendChild(h("form", { class: "filters", onsubmit: search, dataset: { test: "callback-filters" } },
    field("Service", controls.service), field("State", controls.state), field("Reason", controls.reason),
    field("Number", controls.number), field("Created from", controls.from), field("Created before", controls.to),
    field("Search", controls.q),
    button("Search", null, { kind: "primary", type: "submit", test: "search" }), button("Clear", reset, { test: "clear" })));
  main.appendChild(error);
  main.appendChild(section("Newest first", body));
  await load();
});

// -- a new callback ----------------------------------------------------------------------------
function keyRow(rows) {
  const row = h("div", { class: "key-row", dataset: { test: "key-row" } },
    h("input", { name: "key", type: "text", placeholder: "key", "aria-label": "Key", spellcheck: "false" }),
    h("input", { name: "value", type: "text", placeholder: "value", "aria-label": "Value" }),
    button("Remove", () => row.remove(), { test: "remove-key" }));
  rows.appendChild(row);
  return row;
}

route("callbacks/new", async (_params, main) => {
  main.appendChild(pageHeader("New callback", h("a", { href: "#/callbacks", class: "button" }, "Back to the list")));
  if (!may("callbacks.write")) {
    main.appendChild(h("p", { class: "empty" }, "Your role may not create callbacks."));
    return;
  }
  const services = await serviceNames();
  const service = services.length
    ? h("select", { name: "service", required: true }, services.map((s) => h("option", { value: s, selected: s === "callback" }, s)))
    : h("input", { name: "service", type: "text", required: true, value: "callback" });
  const number = h("input", { name: "_customer_number", type: "tel", required: true, placeholder: "+15551234567", autocomplete: "off" });
  const desired = h("input", { name: "_desired_time", type: "datetime-local" });
  const rows = h("div", { class: "key-rows", dataset: { test: "key-rows" } });
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "create-error" } });
  const submit = button("Create callback", null, { kind: "primary", type: "submit", test: "create" });
  const create = async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = { _customer_number: number.value.trim() };
    if (desired.value) body._desired_time = localToIso(desired.value);
    for (const row of rows.querySelectorAll(".key-row")) {
      const key = row.querySelector("[name=key]").value.trim();
      if (key) body[key] = row.querySelector("[name=value]").value;
    }
    submit.disabled = true;
    try {
      const made = await api("POST", `${CREATE_BASE}/${encodeURIComponent(service.value.trim())}`, body);
      toast(`Callback ${made._id} created`, "ok");
      go("#/callbacks/" + encodeURIComponent(made._id));
    } catch (e) {
      error.textContent = e.message;
      submit.disabled = false;
    }
  };
  main.appendChild(h("form", { class: "panel new-callback", onsubmit: create, dataset: { test: "new-callback-form" } },
    field("Service", service),
    field("Customer number", number, "The number the contact center calls, e.g. +15551234567."),
    field("Desired time", desired, "Your local time; empty: as soon as possible."),
    h("fieldset", { class: "keys" }, h("legend", {}, "Keys of the callback"),
      h("p", { class: "help" }, "Extra data the flow and the agent see (order number, language...)."),
      rows, button("Add key", () => keyRow(rows).querySelector("input").focus(), { test: "add-key" })),
    error, submit));
  number.focus();
});

// -- one callback ------------------------------------------------------------------------------
function recordList(record) {
  const keys = Object.keys(record).sort((a, b) => (a.startsWith("_") === b.startsWith("_") ? a.localeCompare(b) : a.startsWith("_") ? -1 : 1));
  return h("dl", { class: "record", dataset: { test: "record" } }, keys.map((k) => [
    h("dt", { class: "mono" }, k), h("dd", { class: "mono", dataset: { key: k } }, text(record[k]))]));
}

// A <details> whose open state outlives the page's redraws (`opened` holds the keys of the open ones).
function unfoldable(key, opened, body) {
  const folded = h("details", { open: opened.has(key) }, h("summary", {}, "show"), body);
  folded.addEventListener("toggle", () => (folded.open ? opened.add(key) : opened.delete(key)));
  return folded;
}

function json(value) {
  return h("pre", { class: "message" }, JSON.stringify(value, null, 2));
}

function attemptsTable(attempts) {
  return table([
    { label: "At", value: (a) => formatTime(a.at) },
    { label: "Result", value: (a) => h("span", { class: `result-${a.result}`, dataset: { test: "attempt-result" } }, text(a.result)) },
    { label: "HTTP status", class: "num", value: (a) => text(a.status) },
    { label: "Error", value: (a) => h("span", { class: "bad" }, text(a.error)) },
  ], attempts || [], { empty: "No attempt yet." });
}

// One delivery or push, folded to a line (what, where, result, attempts, last error); `opened`
// keeps which ones the reader unfolded across the page's refreshes.
function sentItem(kind, item, opened, what) {
  const key = `${kind}-${item.id ?? item.event}-${item.at ?? ""}`;
  const attempts = item.attempts || [];
  const last = attempts.at(-1);
  const error = item.error || (last && last.result !== "delivered" ? last.error : null);
  const folded = h("details", { class: "delivery", open: opened.has(key), dataset: { test: kind } },
    h("summary", {}, h("span", { class: "delivery-event mono" }, text(item.event)), " ", what, " ",
      h("span", { class: `badge result-${item.status}`, dataset: { test: kind + "-status" } }, text(item.status)), " ",
      h("span", { class: "muted", dataset: { test: kind + "-attempts" } }, `${attempts.length} attempt${attempts.length === 1 ? "" : "s"}`),
      error ? h("span", { class: "delivery-error bad" }, text(error)) : null),
    attemptsTable(attempts));
  folded.addEventListener("toggle", () => (folded.open ? opened.add(key) : opened.delete(key)));
  return folded;
}

function deliveryList(deliveries, opened) {
  if (!deliveries.length) return h("p", { class: "empty" }, "No status notification for this callback.");
  return h("div", { class: "deliveries" }, deliveries.map((d) => sentItem("delivery", d, opened,
    h("span", { class: "muted" }, `${text(d.type)} to `, h("span", { class: "mono" }, text(d.target))))));
}

function pushList(pushes, opened) {
  if (!pushes.length) return h("p", { class: "empty" }, "No push notification for this callback.");
  return h("div", { class: "deliveries" }, pushes.map((p) => sentItem("push", p, opened, formatTime(p.at))));
}

// The flow's chart with the session's active states; the SCXML is fetched once per version.
function sessionView(session, cache) {
  if (!session) return h("p", { class: "empty", dataset: { test: "no-session" } }, "No flow session: the callback waits for its time, or its session is gone.");
  const about = h("p", { class: "muted", dataset: { test: "session" } },
    `Session ${text(session.sessionid)} of flow ${text(session.flow)} version ${text(session.version)}, ${text(session.status)}; active: `,
    h("span", { class: "mono", dataset: { test: "active-states" } }, (session.active_states || []).join(", ") || "none"));
  const key = `${session.flow}@${session.version}`;
  if (cache.key !== key) {
    cache.key = key;
    cache.chart = h("div", { class: "chart-box" }, h("p", { class: "muted" }, "Loading the flow's chart…"));
    const box = cache.chart;
    api("GET", `/admin/flows/${encodeURIComponent(session.flow)}`, undefined, { query: { format: "scxml", version: session.version } })
      .then((source) => {
        clear(box).appendChild(stateChart(String(source), cache.active || [], { width: chartWidth(box) }));
      })
      .catch((e) => clear(box).appendChild(h("p", { class: "form-error" }, `The flow's chart cannot be drawn: ${e.message}`)));
  }
  cache.active = session.active_states || [];
  markActive(cache.chart, cache.active);
  return [about, cache.chart];
}

function actions(record, reload) {
  if (!may("callbacks.write") || record._callback_state === "COMPLETED") return null;
  const path = `${CREATE_BASE}/${encodeURIComponent(record._service_name)}/${encodeURIComponent(record._id)}`;
  const when = h("input", { name: "_new_desired_time", type: "datetime-local", required: true,
    value: record._desired_time ? isoToLocal(record._desired_time) : "" });
  const confirmBox = h("div", { class: "confirm", hidden: true, dataset: { test: "cancel-confirm" } },
    h("span", {}, "Cancel this callback? It completes with reason CANCELLED."),
    button("Yes, cancel it", async (event) => {
      event.target.disabled = true;
      try {
        await api("DELETE", path);
        toast(`Callback ${record._id} cancelled`, "ok");
      } catch (e) {
        toast(e.message, "error");
      }
      confirmBox.hidden = true;
      event.target.disabled = false;
      reload();
    }, { kind: "danger", test: "cancel-yes" }),
    button("Keep it", () => { confirmBox.hidden = true; }, { test: "cancel-no" }));
  const reschedule = async (event) => {
    event.preventDefault();
    const iso = localToIso(when.value);
    if (!iso) return;
    try {
      await api("PUT", path, { _new_desired_time: iso });
      toast(`Callback ${record._id} rescheduled`, "ok");
    } catch (e) {
      toast(e.message, "error");
    }
    reload();
  };
  const cancel = button("Cancel callback", () => { confirmBox.hidden = false; }, { kind: "danger", test: "cancel" });
  // Only a callback still waiting for its time can move (the engine says so too).
  const controls = record._callback_state === "SCHEDULED"
    ? h("form", { class: "filters", onsubmit: reschedule, dataset: { test: "reschedule-form" } },
      field("New desired time", when, "Your local time."),
      button("Reschedule", null, { kind: "primary", type: "submit", test: "reschedule" }), cancel)
    : h("div", { class: "actions" }, cancel);
  return section("Actions", controls, confirmBox);
}

route("callbacks/:id", async ({ id }, main) => {
  const title = h("h1", {}, "Callback ", h("span", { class: "mono" }, id));
  const state = h("span", { dataset: { test: "detail-state" } });
  main.appendChild(h("div", { class: "page-head" }, title, state, h("div", { class: "actions" }, h("a", { href: "#/callbacks", class: "button" }, "Back to the list"))));
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "detail-error" } });
  const actionBox = h("div", { dataset: { test: "actions" } });
  const parts = {
    record: h("div", { "aria-busy": "true" }),
    timeline: h("div"), events: h("div"), deliveries: h("div"), pushes: h("div"), session: h("div"),
  };
  main.append(error, actionBox,
    section("Record", parts.record), section("Timeline", parts.timeline),
    section("Flow session", parts.session),
    section("Status events", parts.events),
    section("Status notifications", parts.deliveries), section("Push notifications", parts.pushes));
  const chart = {};
  const opened = new Set();
  let lastSeen = "";
  let shownState = null;
  let stop = null;
  const load = async () => {
    let history;
    try {
      history = await api("GET", `/admin/callbacks/${encodeURIComponent(id)}/history`);
    } catch (e) {
      error.textContent = e.message;
      parts.record.removeAttribute("aria-busy");
      if (e.status === 404 && stop) stop();
      return;
    }
    error.textContent = "";
    // Unchanged since the last look: nothing to draw again (an unfolded part stays as it is).
    const seen = JSON.stringify(history);
    if (seen === lastSeen) return;
    lastSeen = seen;
    const record = history.record || {};
    clear(state).appendChild(stateBadge(record._callback_state));
    if (record._callback_reason) state.append(" ", h("span", { class: "muted", dataset: { test: "detail-reason" } }, record._callback_reason));
    clear(parts.record).appendChild(recordList(record));
    parts.record.removeAttribute("aria-busy");
    clear(parts.timeline).appendChild(table([
      { label: "At", value: (t) => formatTime(t.at) },
      { label: "From", value: (t) => (t.from ? stateBadge(t.from) : "—") },
      { label: "To", value: (t) => stateBadge(t.state) },
      { label: "Reason", value: (t) => text(t.reason) },
      { label: "Source", value: (t) => text(t.source) },
    ], history.timeline || [], { test: "timeline", empty: "No state change recorded." }));
    clear(parts.events).appendChild(table([
      { label: "At", value: (e) => formatTime(e.at) },
      { label: "Event", value: (e) => h("span", { class: "mono" }, text(e.name)) },
      { label: "Data", value: (e) => (e.data && Object.keys(e.data).length ? unfoldable(`event-${e.id}`, opened, json(e.data)) : "—") },
    ], history.events || [], { test: "events", empty: "No status event yet." }));
    clear(parts.deliveries).appendChild(deliveryList(history.deliveries || [], opened));
    clear(parts.pushes).appendChild(pushList(history.pushes || [], opened));
    clear(parts.session).append(...[sessionView(history.session, chart)].flat());
    // The action form is drawn again only when the state changes, so a time being typed stays.
    if (record._callback_state !== shownState) {
      shownState = record._callback_state;
      clear(actionBox);
      const box = actions(record, load);
      if (box) actionBox.appendChild(box);
    }
    if (record._callback_state === "COMPLETED" && stop) stop();
  };
  stop = poll(load, REFRESH_MS);
});
