// Simulator (Operations > Simulator): the embedded contact center the engine calls through.
// Its state (agents per queue, who is busy, what waits) is read every 2 s; its settings (agents,
// handle times, dial outcomes) are edited here and checked by the engine, which says what it
// refuses. time_scale is shown, not edited: the engine reads it at start.
import { api, button, clear, field, formatTime, h, may, menu, pageHeader, poll, route, section, table, text, toast } from "../core.js";

menu("Operations", "Simulator", "#/simulator", "simulator.read");

const SCALARS = [
  ["ring_seconds", "Ring (s)", "from dial to the dial result"],
  ["route_seconds", "Route (s)", "from route to the agent's phone ringing"],
  ["treatment_seconds", "Treatment (s)", "a treatment without its own length"],
  ["callin_valid_seconds", "Call-in code valid (s)", "how long an access code works"],
  ["auto_callin_seconds", "Automatic call-in after (s)", "> 0: customers call in by themselves"],
  ["default_handle_seconds", "Default handle time (s)", "EWT's handle time before a queue handled a call"],
];
const OUTCOMES = ["answer", "busy", "no_answer", "answering_machine", "error"];

route("simulator", async (_params, main) => {
  const first = await api("GET", "/admin/simulator");
  main.appendChild(pageHeader("Simulator"));
  const clock = h("p", { class: "sim-clock", dataset: { test: "sim-clock" } });
  const queues = h("div", { dataset: { test: "sim-queues" } });
  main.appendChild(section("Contact center now", clock, queues));
  const outcomes = h("div", { dataset: { test: "sim-outcomes" } });
  main.appendChild(section("Dial outcomes", outcomes));
  showOutcomes(outcomes, first.config);
  if (may("simulator.write")) {
    main.appendChild(settingsForm(first.config, (config) => showOutcomes(outcomes, config)));
    main.appendChild(callInForm());
  }
  poll(async () => showState(clock, queues, (await api("GET", "/admin/simulator")).state), 2000);
});

function showState(clock, box, state) {
  clear(clock).append(`Time scale ×${state.time_scale} (engine clock `, formatTime(state.now), ")",
    state.time_scale !== 1 ? " — every simulated second passes faster than a real one" : "");
  const rows = Object.entries(state.queues || {}).map(([name, q]) => ({ name, ...q }));
  clear(box).appendChild(table([
    { label: "Virtual queue", value: (q) => q.name },
    { label: "Agents", class: "num", value: (q) => String(q.agents_configured) },
    { label: "Staffed", class: "num", value: (q) => String(q.agents_staffed) },
    { label: "Busy", class: "num", value: (q) => String(q.agents_busy) },
    { label: "Free", class: "num", value: (q) => String(q.agents_free) },
    { label: "Waiting", class: "num", value: (q) => String(q.waiting) },
    { label: "EWT (s)", class: "num", value: (q) => (q.ewt_seconds === null || q.ewt_seconds < 0 ? "—" : String(Math.round(q.ewt_seconds))) },
    { label: "Handle (s)", class: "num", value: (q) => `${q.handle_seconds}${q.handle_jitter ? " ± " + q.handle_jitter : ""}` },
    { label: "Agent states", value: (q) => h("span", { class: "agents" }, (q.agents || []).map((a) =>
      h("span", { class: "agent agent-" + a.state, title: `${a.agent_id} (extension ${a.extension}): ${a.state}` }, `${a.extension} ${a.state}`))) },
  ], rows, { test: "sim-queue-table", empty: "No virtual queue." }));
}

function showOutcomes(box, config) {
  clear(box).appendChild(h("p", {}, "A number no rule matches: ", h("strong", { dataset: { test: "sim-default-outcome" } }, text(config.default_outcome)),
    `. Click-to-call-in access number: ${text(config.access_number)}.`));
  box.appendChild(table([
    { label: "Numbers matching", value: (r) => h("code", {}, r.pattern) },
    { label: "Outcomes", value: (r) => (r.sequence ? `in turn: ${r.sequence.join(" → ")} (the last repeats)`
      : "at random: " + Object.entries(r.probabilities || {}).map(([o, w]) => `${o} ${w}`).join(", ")) },
  ], config.dial_rules || [], { test: "sim-rules", empty: "No rule: every dial gets the default outcome." }));
}

function settingsForm(config, saved) {
  const inputs = {};
  const number = (name, value) => (inputs[name] = h("input", { name, type: "text", inputmode: "decimal", value: String(value), autocomplete: "off" }));
  const queueRows = Object.entries(config.queues || {}).map(([name, q]) => h("tr", {},
    h("th", { scope: "row" }, name),
    h("td", {}, labelled(number(`queue:${name}:agents`, q.agents), `${name} agents`)),
    h("td", {}, labelled(number(`queue:${name}:handle_seconds`, q.handle_seconds), `${name} handle seconds`)),
    h("td", {}, labelled(number(`queue:${name}:handle_jitter`, q.handle_jitter), `${name} handle jitter`))));
  const outcome = h("select", { name: "default_outcome" }, OUTCOMES.map((o) => h("option", { value: o, selected: o === config.default_outcome }, o)));
  const access = h("input", { name: "access_number", type: "text", value: text(config.access_number), autocomplete: "off" });
  const rules = h("textarea", { name: "dial_rules", rows: 8, spellcheck: "false" }, JSON.stringify(config.dial_rules || [], null, 2));
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "simulator-error" } });
  const save = async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = JSON.parse(JSON.stringify(config));
    for (const [name] of SCALARS) body[name] = asNumber(inputs[name].value);
    for (const queue of Object.keys(body.queues || {})) {
      for (const key of ["agents", "handle_seconds", "handle_jitter"]) body.queues[queue][key] = asNumber(inputs[`queue:${queue}:${key}`].value);
    }
    body.default_outcome = outcome.value;
    body.access_number = access.value.trim();
    try {
      body.dial_rules = JSON.parse(rules.value || "[]");
    } catch (e) {
      error.textContent = `Dial rules: not JSON (${e.message})`;
      return;
    }
    try {
      const answer = await api("PUT", "/admin/simulator", body);
      config = answer.config;
      saved(config);
      toast("Simulator settings saved", "ok");
    } catch (e) {
      error.textContent = e.message;
      toast(e.message, "error");
    }
  };
  return h("form", { class: "panel", onsubmit: save, dataset: { test: "simulator-form" }, novalidate: true },
    h("h2", {}, "Settings"),
    h("p", { class: "muted" }, `Time scale ×${config.time_scale} is read when the engine starts (config/simulator.toml). The other settings apply at once; the engine refuses what it cannot use and says why.`),
    h("div", { class: "sim-scalars" }, SCALARS.map(([name, label, help]) => field(label, number(name, config[name]), help))),
    h("div", { class: "grid-2" }, field("Default outcome", outcome, "for numbers no rule matches"), field("Access number", access, "what click-to-call-in customers dial")),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Virtual queue", "Agents", "Handle (s)", "Jitter ± (s)"].map((l) => h("th", { scope: "col" }, l)))),
      h("tbody", {}, queueRows))),
    field("Dial rules (JSON)", rules, 'a list of {"pattern": regular expression, "sequence": [outcomes]} or {"pattern", "probabilities": {outcome: weight}}; first match wins'),
    error,
    h("div", { class: "actions" }, button("Save settings", null, { kind: "primary", type: "submit", test: "simulator-save" })));
}

function labelled(input, label) {
  input.setAttribute("aria-label", label);
  return input;
}

// A number where the text is one; otherwise the text, for the engine to refuse by name.
function asNumber(value) {
  const v = value.trim();
  return v !== "" && Number.isFinite(Number(v)) ? Number(v) : v;
}

function callInForm() {
  const number = h("input", { name: "callin_number", type: "tel", autocomplete: "off", placeholder: "+15551234567" });
  const code = h("input", { name: "callin_code", type: "text", inputmode: "numeric", autocomplete: "off" });
  const result = h("p", { dataset: { test: "callin-result" }, "aria-live": "polite" });
  const submit = async (event) => {
    event.preventDefault();
    result.className = "";
    try {
      const answer = await api("POST", "/admin/simulator/call-in", { number: number.value.trim(), access_code: code.value.trim() });
      result.textContent = `Matched: the call joined session ${answer.matched_session}.`;
      result.classList.add("ok");
    } catch (e) {
      result.textContent = e.message;
      result.classList.add("bad");
    }
  };
  return h("form", { class: "panel", onsubmit: submit, dataset: { test: "callin-form" }, novalidate: true },
    h("h2", {}, "Simulate a call-in"),
    h("p", { class: "muted" }, "A customer dials the access number and keys in the code of a click-to-call-in callback (see Click-to-call-in records)."),
    h("div", { class: "grid-2" }, field("Customer number", number), field("Access code", code)),
    h("div", { class: "actions" }, button("Call in", null, { kind: "primary", type: "submit", test: "callin-submit" })),
    result);
}
