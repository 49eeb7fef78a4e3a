// API keys (Administration > API keys): the administrator's list of keys (never their secrets),
// creating one (its secret shown once, here only), rotating and revoking.
import { api, button, clear, field, formatTime, h, menu, pageHeader, route, section, table, text, toast } from "../core.js";

menu("Administration", "API keys", "#/keys", "keys.manage");

const ROLES = ["administrator", "supervisor", "monitor", "developer", "client"];

route("keys", async (_params, main) => {
  main.appendChild(pageHeader("API keys"));
  const secretBox = h("div", { dataset: { test: "secret-box" } });
  const list = h("div", { dataset: { test: "keys" } });
  const { services } = await api("GET", "/admin/services").catch(() => ({ services: [] }));
  const reload = async () => {
    const { keys } = await api("GET", "/admin/keys");
    clear(list).appendChild(table(columns(reload, secretBox), keys, { test: "key-table", empty: "No key." }));
  };
  main.appendChild(secretBox);
  main.appendChild(section("Keys", list));
  main.appendChild(createForm(services, reload, secretBox));
  await reload();
});

// The secret of a created or rotated key: shown once, with what that means, until dismissed.
function showSecret(box, name, secret, why) {
  clear(box).appendChild(h("div", { class: "panel secret", role: "alert" },
    h("h2", {}, `${why}: ${name}`),
    h("p", { class: "warn" }, "Copy this secret now. It is shown only this once: the engine keeps only its hash, and leaving this page forgets it."),
    h("input", { type: "text", readonly: true, class: "mono secret-value", value: secret, "aria-label": "the new secret", dataset: { test: "new-secret" }, onfocus: (e) => e.target.select() }),
    h("div", { class: "actions" }, button("I have copied it", () => clear(box), { test: "secret-done" }))));
}

function columns(reload, secretBox) {
  return [
    { label: "Name", value: (k) => h("strong", {}, k.name) },
    { label: "Role", value: (k) => h("span", { class: "badge" }, k.role) },
    { label: "Prefix", value: (k) => h("code", {}, text(k.prefix)) },
    { label: "Services", value: (k) => (k.services ? k.services.join(", ") : k.role === "client" ? "all" : "—") },
    { label: "Created", value: (k) => formatTime(k.created) },
    { label: "Rotated", value: (k) => formatTime(k.rotated) },
    { label: "Last used", value: (k) => formatTime(k.last_used) },
    { label: "Source", value: (k) => k.source },
    { label: "", value: (k) => (k.source === "environment"
      ? h("span", { class: "muted" }, "set by the environment")
      : h("span", { class: "actions" }, rotateButton(k, reload, secretBox), revokeButton(k, reload))) },
  ];
}

function rotateButton(key, reload, secretBox) {
  return button("Rotate", async () => {
    try {
      const answer = await api("POST", `/admin/keys/${encodeURIComponent(key.name)}/rotate`);
      showSecret(secretBox, answer.name, answer.key, "New secret");
      toast(`Key ${answer.name} rotated: the old secret no longer works`, "ok");
      await reload();
    } catch (e) {
      toast(e.message, "error");
    }
  }, { test: "rotate-" + key.name });
}

// Two steps: the first click asks, the second revokes.
function revokeButton(key, reload) {
  let armed = false;
  const b = button("Revoke", async () => {
    if (!armed) {
      armed = true;
      b.textContent = `Really revoke ${key.name}?`;
      return;
    }
    try {
      await api("DELETE", `/admin/keys/${encodeURIComponent(key.name)}`);
      toast(`Key ${key.name} revoked`, "ok");
      await reload();
    } catch (e) {
      toast(e.message, "error");
    }
  }, { kind: "danger", test: "revoke-" + key.name });
  b.addEventListener("blur", () => { armed = false; b.textContent = "Revoke"; });
  return b;
}

function createForm(services, reload, secretBox) {
  const name = h("input", { name: "key_name", type: "text", autocomplete: "off", spellcheck: "false", required: true });
  const role = h("select", { name: "key_role" }, ROLES.map((r) => h("option", { value: r, selected: r === "client" }, r)));
  const scope = h("fieldset", { class: "scope", dataset: { test: "key-services" } }, h("legend", {}, "Services this client key may reach (none ticked: all)"),
    services.map((s) => h("label", { class: "checkbox" }, h("input", { type: "checkbox", name: "key_service", value: s }), s)));
  role.addEventListener("change", () => { scope.hidden = role.value !== "client"; });
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "key-error" } });
  const create = async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = { name: name.value.trim(), role: role.value };
    const ticked = [...scope.querySelectorAll("input:checked")].map((i) => i.value);
    if (role.value === "client" && ticked.length) body.services = ticked;
    try {
      const answer = await api("POST", "/admin/keys", body);
      showSecret(secretBox, answer.name, answer.key, "Key created");
      name.value = "";
      scope.querySelectorAll("input:checked").forEach((i) => { i.checked = false; });
      await reload();
      secretBox.scrollIntoView();
    } catch (e) {
      error.textContent = e.message;
    }
  };
  return h("form", { class: "panel", onsubmit: create, dataset: { test: "key-create" }, novalidate: true },
    h("h2", {}, "Create a key"),
    h("div", { class: "grid-2" }, field("Name", name, "letters, digits, '.', '_' or '-'"), field("Role", role)),
    scope, error,
    h("div", { class: "actions" }, button("Create", null, { kind: "primary", type: "submit", test: "key-create-button" })));
}
