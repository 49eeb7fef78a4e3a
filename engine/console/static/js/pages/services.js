// Services (Configuration > Services): each callback service's options with their description,
// default and validation, the business hours and the transaction list it names; editing sends
// the whole service to the engine, which alone decides what is valid and says why not.
import { ApiFailure, api, button, field, h, may, menu, pageHeader, route, section, table, text, toast } from "../core.js";

menu("Configuration", "Services", "#/services", "services.read");

route("services", async (_params, main) => {
  main.appendChild(pageHeader("Services"));
  const { services } = await api("GET", "/admin/services");
  const details = await Promise.all(services.map((name) => api("GET", `/admin/services/${encodeURIComponent(name)}`)
    .catch((e) => ({ name, effective: {}, error: e.message }))));
  main.appendChild(section("Callback services", table([
    { label: "Service", value: (s) => h("a", { href: `#/services/${encodeURIComponent(s.name)}`, dataset: { test: "service-link" } }, s.name) },
    { label: "Flow", value: (s) => s.effective._service },
    { label: "Direction", value: (s) => s.effective._call_direction },
    { label: "Virtual queue", value: (s) => s.effective._urs_virtual_queue },
    { label: "Business hours", value: (s) => s.effective._business_hours_service },
    { label: "Transaction list", value: (s) => s.effective._callback_events_list },
  ], details, { test: "services", empty: "No callback service is configured." })));
  if (may("services.write")) main.appendChild(newServiceForm(details));
});

// A new service starts as a copy of an existing one's configured options (or of the defaults).
function newServiceForm(details) {
  const name = h("input", { name: "service_name", type: "text", autocomplete: "off", spellcheck: "false", required: true });
  const base = h("select", { name: "service_copy" }, h("option", { value: "" }, "the defaults"),
    details.map((s) => h("option", { value: s.name }, s.name)));
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "new-service-error" } });
  const create = async (event) => {
    event.preventDefault();
    error.textContent = "";
    const wanted = name.value.trim();
    const copied = details.find((s) => s.name === base.value);
    try {
      if (!wanted) throw new Error("give the service a name");
      if (details.some((s) => s.name === wanted)) throw new Error(`service ${wanted} exists: open it to change it`);
      await api("PUT", `/admin/services/${encodeURIComponent(wanted)}`, copied ? { ...copied.configured } : {});
      toast(`Service ${wanted} created`, "ok");
      location.hash = `#/services/${encodeURIComponent(wanted)}`;
    } catch (e) {
      error.textContent = e.message;
    }
  };
  return h("form", { class: "panel", onsubmit: create, dataset: { test: "new-service" }, novalidate: true },
    h("h2", {}, "New service"),
    h("div", { class: "grid-2" }, field("Name", name, "what create requests name in their path"), field("Options copied from", base)),
    error,
    h("div", { class: "actions" }, button("Create", null, { kind: "primary", type: "submit", test: "new-service-button" })));
}

route("services/:name", async ({ name }, main) => {
  const path = `/admin/services/${encodeURIComponent(name)}`;
  const [service, options] = await Promise.all([
    api("GET", path),
    api("GET", "/admin/services/options").then((a) => a.options, (e) => e),
  ]);
  main.appendChild(pageHeader(`Service ${name}`, h("a", { href: "#/services", class: "button" }, "All services")));
  const known = Array.isArray(options) ? options : optionsFrom(service);
  if (!Array.isArray(options)) {
    main.appendChild(h("p", { class: "form-error", dataset: { test: "options-unavailable" } },
      `Option descriptions are not available: ${options.message}`));
  }
  const form = optionsForm(name, path, service, known);
  main.appendChild(form.node);
  const related = h("div", { class: "grid-2" });
  main.appendChild(related);
  await showRelated(related, service.effective);
});

// Without the options endpoint: the names and values the service answered, no help.
function optionsFrom(service) {
  return Object.keys(service.effective).map((name) => ({ name, type: typeof service.effective[name] === "number" ? "int"
    : typeof service.effective[name] === "boolean" ? "bool" : "str", default: null, help: "" }));
}

function isInt(o) { return o.type === "int" || o.type === "integer"; }
function isBool(o) { return o.type === "bool" || o.type === "boolean"; }

function rules(o) {
  const parts = [isInt(o) ? "whole number" : isBool(o) ? "true or false" : "text"];
  if (o.choices && o.choices.length) parts.push("one of " + o.choices.join(", "));
  if (o.minimum !== null && o.minimum !== undefined) parts.push("at least " + o.minimum);
  if (o.maximum !== null && o.maximum !== undefined) parts.push("at most " + o.maximum);
  if (o.pattern) parts.push("matching " + o.pattern);
  if (o.refers_to) parts.push(`names an existing ${o.refers_to}`);
  if (o.request) parts.push("a create request may set it for its callback");
  return parts.join("; ");
}

// One input per option: empty means "the default"; a select where the values are a fixed set.
function inputFor(o, configured, editable) {
  const value = configured === undefined ? "" : String(configured);
  const attrs = { name: o.name, disabled: !editable, dataset: { test: "option-" + o.name } };
  if (isBool(o) || (o.choices && o.choices.length)) {
    const values = isBool(o) ? ["true", "false"] : o.choices;
    const shownDefault = o.default === null || o.default === undefined ? "" : ` (${text(o.default)})`;
    const select = h("select", attrs, h("option", { value: "" }, "default" + shownDefault),
      values.map((v) => h("option", { value: v, selected: v === value }, v)));
    if (value && !values.includes(value)) select.appendChild(h("option", { value, selected: true }, value));
    return select;
  }
  return h("input", { ...attrs, type: "text", value, inputmode: isInt(o) ? "numeric" : undefined,
    placeholder: o.default === null || o.default === undefined || o.default === "" ? "" : String(o.default),
    spellcheck: "false", autocomplete: "off" });
}

function optionsForm(name, path, service, known) {
  const editable = may("services.write");
  const configured = service.configured || {};
  const inputs = new Map();
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "service-error" } });
  const rows = known.map((o) => {
    const input = inputFor(o, configured[o.name], editable);
    input.setAttribute("aria-label", o.name);
    inputs.set(o.name, { input, option: o });
    return h("tr", { dataset: { option: o.name } },
      h("th", { scope: "row" }, h("code", {}, o.name)),
      h("td", { "data-label": "Description" }, o.help || h("span", { class: "muted" }, "—")),
      h("td", { "data-label": "Default" }, h("code", {}, text(o.default))),
      h("td", { class: "muted", "data-label": "Validation" }, rules(o)),
      h("td", { "data-label": "Value" }, input, h("div", { class: "muted small" }, "effective: ", h("code", {}, text(service.effective[o.name])))));
  });
  // Options the service carries that the engine does not know (handed to the flow as they are).
  const extra = Object.keys(configured).filter((k) => !inputs.has(k));
  const save = async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = {};
    for (const k of extra) body[k] = configured[k];
    for (const [key, { input, option }] of inputs) {
      const raw = input.value.trim();
      if (raw === "") continue;
      if (isInt(option) && /^-?\d+$/.test(raw)) body[key] = Number(raw);
      else if (isBool(option) && (raw === "true" || raw === "false")) body[key] = raw === "true";
      else body[key] = raw; // the engine checks it and says what is wrong
    }
    try {
      const saved = await api("PUT", path, body);
      toast(`Service ${name} saved`, "ok");
      for (const [key, { input }] of inputs) {
        const effective = input.parentElement.querySelector(".small code");
        if (effective) effective.textContent = text(saved.effective[key]);
      }
    } catch (e) {
      error.textContent = e.message;
      toast(e.message, "error");
    }
  };
  const node = h("form", { class: "panel service-form", onsubmit: save, dataset: { test: "service-form" }, novalidate: true },
    h("h2", {}, "Options"),
    h("p", { class: "muted" }, editable
      ? "Leave a value empty to use the default. The engine checks every value when you save and names any it refuses."
      : "Your role may read the options, not change them."),
    h("div", { class: "table-wrap" }, h("table", { class: "options" },
      h("thead", {}, h("tr", {}, ["Option", "Description", "Default", "Validation", "Value"].map((l) => h("th", { scope: "col" }, l)))),
      h("tbody", {}, rows))),
    extra.length ? h("p", { class: "muted" }, "Other options given to the flow as they are: ",
      extra.map((k) => h("code", { class: "extra" }, `${k}=${text(configured[k])}`))) : null,
    error,
    editable ? h("div", { class: "actions" }, button("Save", null, { kind: "primary", type: "submit", test: "service-save" })) : null);
  return { node };
}

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const spans = (value) => value.split(",").map((x) => x.trim()).filter(Boolean);

// Business hours as the engine keeps them: a time zone, spans per weekday, and dated exceptions
// (one a line: "2026-12-24 09:00-12:00", a date alone is closed all day).
function hoursForm(name, b) {
  const zone = h("input", { name: "hours_time_zone", type: "text", value: text(b.time_zone), autocomplete: "off", spellcheck: "false" });
  const days = Object.fromEntries(DAYS.map((d) => [d, h("input", { name: "hours_" + d, type: "text", autocomplete: "off",
    value: ((b.weekly || {})[d] || []).join(", "), placeholder: "closed" })]));
  const exceptions = h("textarea", { name: "hours_exceptions", rows: 4, spellcheck: "false" },
    Object.entries(b.exceptions || {}).map(([date, s]) => `${date} ${s.join(", ")}`.trim()).join("\n"));
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "hours-error" } });
  const save = async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = { time_zone: zone.value.trim(), weekly: {}, exceptions: {} };
    for (const d of DAYS) body.weekly[d] = spans(days[d].value);
    for (const line of exceptions.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const [date, ...rest] = line.split(/\s+/);
      body.exceptions[date] = spans(rest.join(" "));
    }
    try {
      await api("PUT", `/admin/business-hours/${encodeURIComponent(name)}`, body);
      toast(`Business hours ${name} saved`, "ok");
    } catch (e) {
      error.textContent = e.message;
      toast(e.message, "error");
    }
  };
  return h("form", { onsubmit: save, dataset: { test: "hours-form" }, novalidate: true },
    h("p", {}, h("strong", {}, name), h("span", { class: "muted" }, " — spans like 09:00-12:30, comma-separated; empty: closed")),
    field("Time zone", zone, "an IANA name such as Europe/Paris"),
    h("div", { class: "hours-days" }, DAYS.map((d) => field(d, days[d]))),
    field("Exceptions", exceptions, "one date a line, then its spans (none: closed that day)"),
    error,
    h("div", { class: "actions" }, button("Save hours", null, { type: "submit", test: "hours-save" })));
}

async function showRelated(box, effective) {
  const hoursName = effective._business_hours_service;
  const hours = section("Business hours");
  hours.dataset.test = "business-hours";
  box.appendChild(hours);
  if (!hoursName) hours.appendChild(h("p", { class: "empty" }, "This service names no business hours: callbacks may be asked for at any time."));
  else {
    try {
      const b = await api("GET", `/admin/business-hours/${encodeURIComponent(hoursName)}`);
      if (may("business_hours.write")) hours.appendChild(hoursForm(hoursName, b));
      else {
        hours.appendChild(h("dl", { class: "record" },
          h("dt", {}, "Name"), h("dd", {}, hoursName),
          h("dt", {}, "Time zone"), h("dd", {}, text(b.time_zone)),
          Object.entries(b.weekly || {}).map(([day, spans]) => [h("dt", {}, day), h("dd", {}, (spans || []).join(", ") || "closed")]),
          h("dt", {}, "Exceptions"), h("dd", {}, Object.keys(b.exceptions || {}).length ? text(b.exceptions) : "none")));
      }
    } catch (e) {
      hours.appendChild(h("p", { class: "form-error" }, `${hoursName}: ${e.message}`));
    }
  }
  const listName = effective._callback_events_list;
  const list = section("Transaction list");
  list.dataset.test = "service-transaction-list";
  box.appendChild(list);
  if (!listName) {
    list.appendChild(h("p", { class: "empty" }, "This service names no transaction list: it sends every status event."));
    return;
  }
  try {
    const t = await api("GET", `/admin/transaction-lists/${encodeURIComponent(listName)}`);
    list.appendChild(h("p", {}, h("a", { href: `#/transaction-lists/${encodeURIComponent(listName)}` }, listName),
      ` sends ${Object.keys(t.events || {}).length} events:`));
    list.appendChild(h("ul", { class: "events" }, Object.keys(t.events || {}).sort().map((e) => h("li", {}, h("code", {}, e)))));
  } catch (e) {
    list.appendChild(h("p", { class: "form-error" }, `${listName}: ${e instanceof ApiFailure ? e.message : String(e)}`));
  }
}
