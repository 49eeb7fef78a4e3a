// Transaction lists (Configuration > Transaction lists): the GMS_Events.cfg files that say which
// status events a service sends and with which fields. Import one (a file or pasted text), see
// what each event's message would look like before saving, and see errors with their line.
import { ApiFailure, api, button, clear, field, h, may, menu, pageHeader, route, section, table, text, toast } from "../core.js";

menu("Configuration", "Transaction lists", "#/transaction-lists", "transaction_lists.read");

const NAME = /^[A-Za-z0-9_.-]{1,100}$/;

// An engine refusal with the place it names: "line 12 (section [x]): message".
function refusal(e) {
  const body = e instanceof ApiFailure && e.body && typeof e.body === "object" ? e.body : {};
  const where = [];
  if (body.line !== undefined && body.line !== null) where.push(`line ${body.line}`);
  if (body.section) where.push(`section [${body.section}]`);
  return { where: where.join(", "), message: e.message || String(e) };
}

function showRefusal(box, e) {
  clear(box);
  const { where, message } = refusal(e);
  box.appendChild(h("div", { class: "list-error", role: "alert", dataset: { test: "list-error" } },
    where ? h("strong", { dataset: { test: "list-error-where" } }, where + ": ") : null, message));
}

// The preview answer: one row per event with the message it would send, and the warnings.
function showPreview(box, preview) {
  clear(box);
  const warnings = preview.warnings || [];
  if (warnings.length) {
    box.appendChild(h("div", { class: "warnings", dataset: { test: "list-warnings" } }, h("h3", {}, "Warnings"),
      h("ul", {}, warnings.map((w) => h("li", {}, text(w))))));
  }
  box.appendChild(table([
    { label: "Event", value: (e) => h("code", {}, e.event) },
    { label: "Message it would send", value: (e) => h("pre", { class: "message" }, JSON.stringify(e.message, null, 2)) },
    { label: "Sent when known", value: (e) => ((e.placeholders || []).length
      ? h("span", { class: "mono", title: "no sample value: sent when the record or the flow holds it, left out otherwise" }, e.placeholders.join(", "))
      : "—") },
  ], preview.events || [], { test: "list-preview", empty: "This list sends no event." }));
}

route("transaction-lists", async (_params, main) => {
  main.appendChild(pageHeader("Transaction lists"));
  const { transaction_lists: lists } = await api("GET", "/admin/transaction-lists");
  main.appendChild(section("Lists", table([
    { label: "Name", value: (t) => h("a", { href: `#/transaction-lists/${encodeURIComponent(t.name)}`, dataset: { test: "list-link" } }, t.name) },
    { label: "Events", class: "num", value: (t) => String(t.events.length) },
    { label: "Event names", value: (t) => h("span", { class: "mono" }, t.events.join(", ")) },
    { label: "Warnings", value: (t) => (t.warnings.length ? h("span", { class: "bad" }, t.warnings.join("; ")) : "none") },
  ], lists, { test: "lists", empty: "No transaction list yet." })));
  if (may("transaction_lists.write")) main.appendChild(importPanel());
});

function importPanel() {
  const name = h("input", { name: "list-name", type: "text", required: true, autocomplete: "off", spellcheck: "false", placeholder: "GMS_Events" });
  const file = h("input", { name: "list-file", type: "file", accept: ".cfg,text/plain" });
  const source = h("textarea", { name: "list-text", rows: 14, spellcheck: "false", placeholder: "[properties]\n...\n[_cbe_on_service_create]\n..." });
  const result = h("div", { class: "list-result", dataset: { test: "list-result" }, "aria-live": "polite" });
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    source.value = await chosen.text();
    if (!name.value) name.value = chosen.name.replace(/\.cfg$/i, "");
    clear(result);
  });
  const preview = async () => {
    if (!source.value.trim()) return showRefusal(result, new Error("paste the list or choose a .cfg file first"));
    try {
      showPreview(result, await api("POST", "/admin/transaction-lists/preview", source.value));
    } catch (e) {
      showRefusal(result, e);
    }
    result.scrollIntoView({ block: "start" });
  };
  const save = async (event) => {
    event.preventDefault();
    const listName = name.value.trim();
    if (!NAME.test(listName)) return showRefusal(result, new Error("a list's name is 1 to 100 letters, digits, '.', '_' or '-'"));
    if (!source.value.trim()) return showRefusal(result, new Error("paste the list or choose a .cfg file first"));
    try {
      const saved = await api("PUT", `/admin/transaction-lists/${encodeURIComponent(listName)}`, source.value);
      toast(`Transaction list ${saved.name} saved: ${saved.events.length} events`, "ok");
      location.hash = `#/transaction-lists/${encodeURIComponent(saved.name)}`;
    } catch (e) {
      showRefusal(result, e);
      result.scrollIntoView({ block: "start" });
      toast(e.message, "error");
    }
  };
  return h("form", { class: "panel", onsubmit: save, dataset: { test: "list-import" }, novalidate: true },
    h("h2", {}, "Import a list"),
    h("p", { class: "muted" }, "A list in the GMS_Events.cfg format: choose the file or paste its text. Preview shows the message each event would send; Save replaces the list of that name."),
    h("div", { class: "grid-2" }, field("Name", name, "Services name the list by this name (_callback_events_list)."),
      field(".cfg file", file, "Read in this browser; nothing is sent until Preview or Save.")),
    field("List text", source),
    h("div", { class: "actions" },
      button("Preview", preview, { test: "list-preview-button" }),
      button("Save", null, { kind: "primary", type: "submit", test: "list-save" })),
    result);
}

route("transaction-lists/:name", async ({ name }, main) => {
  const path = `/admin/transaction-lists/${encodeURIComponent(name)}`;
  const [list, source] = await Promise.all([api("GET", path), api("GET", path, undefined, { query: { format: "text" } })]);
  main.appendChild(pageHeader(`Transaction list ${name}`, h("a", { href: "#/transaction-lists", class: "button" }, "All lists")));
  main.appendChild(h("div", { class: "grid-2" },
    section("Properties", Object.keys(list.properties || {}).length
      ? h("dl", { class: "record" }, Object.entries(list.properties).map(([k, v]) => [h("dt", {}, k), h("dd", {}, text(v))]))
      : h("p", { class: "empty" }, "None.")),
    section("Warnings", list.warnings.length ? h("ul", {}, list.warnings.map((w) => h("li", {}, w))) : h("p", { class: "empty" }, "None."))));
  main.appendChild(section("Events", table([
    { label: "Event", value: ([event]) => h("code", {}, event) },
    { label: "Fields sent", value: ([, e]) => h("span", { class: "mono" }, (e.notify_params || []).join(", ") || "—") },
    { label: "Custom fields", value: ([, e]) => (Object.keys(e.notify_custom || {}).length ? h("span", { class: "mono" }, text(e.notify_custom)) : "—") },
  ], Object.entries(list.events || {}), { test: "list-events" })));
  const preview = h("div", { dataset: { test: "list-result" } });
  main.appendChild(section("Preview: the message each event would send", preview));
  try {
    showPreview(preview, await api("GET", `${path}/preview`));
  } catch (e) {
    showRefusal(preview, e);
  }
  main.appendChild(section("As written", h("pre", { class: "cfg", dataset: { test: "list-text" } }, typeof source === "string" ? source : text(source))));
});
