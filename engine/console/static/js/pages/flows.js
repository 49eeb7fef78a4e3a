// Flows (Callbacks > Flows): the SCXML flows with their versions, how many sessions run on each
// version, a version's state chart, and the upload of a new version (a file or pasted text),
// refused with each problem's line and column when the document is not valid.
import { api, button, clear, field, formatTime, go, h, may, menu, pageHeader, route, section, table, text, toast } from "../core.js";
import { chartWidth, stateChart } from "../statechart.js";

menu("Callbacks", "Flows", "#/flows", "flows.read");

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function flowLink(name) {
  return h("a", { href: "#/flows/" + encodeURIComponent(name), dataset: { test: "flow-link" } }, name);
}

// Each problem of a refused document, by line and column, as the engine reported them.
function problemList(e) {
  const problems = (e.body && e.body.problems) || [];
  return h("div", { class: "problems", role: "alert", dataset: { test: "flow-problems" } },
    h("p", { class: "form-error" }, e.message),
    problems.length ? h("ul", {}, problems.map((p) => h("li", { dataset: { test: "flow-problem" } },
      h("span", { class: "where" }, `line ${text(p.line)}, column ${text(p.column)}`), ": ", text(p.message)))) : null);
}

// The upload form: a name (given, or typed for a new flow), a file or the pasted document.
function uploadForm(fixedName, done) {
  const name = fixedName ? null : h("input", { name: "flow-name", type: "text", required: true, placeholder: "my-flow", spellcheck: "false" });
  const file = h("input", { name: "flow-file", type: "file", accept: ".scxml,.xml,application/xml,text/xml" });
  const source = h("textarea", { name: "flow-source", rows: 14, spellcheck: "false", placeholder: "<scxml xmlns=\"http://www.w3.org/2005/07/scxml\" ...>" });
  const result = h("div", { dataset: { test: "flow-upload-result" } });
  const submit = button("Upload new version", null, { kind: "primary", type: "submit", test: "flow-upload" });
  file.addEventListener("change", async () => {
    if (file.files.length) source.value = await file.files[0].text();
  });
  const upload = async (event) => {
    event.preventDefault();
    clear(result);
    const flow = fixedName || name.value.trim();
    if (!NAME.test(flow)) {
      result.appendChild(h("p", { class: "form-error", role: "alert" }, "A flow's name is letters, digits, '.', '_' or '-' (at most 64)."));
      return;
    }
    if (!source.value.trim()) {
      result.appendChild(h("p", { class: "form-error", role: "alert" }, "Choose a file or paste the SCXML document."));
      return;
    }
    submit.disabled = true;
    try {
      const made = await api("PUT", `/admin/flows/${encodeURIComponent(flow)}`, source.value, { type: "application/scxml+xml" });
      toast(`Flow ${made.name} version ${made.version} uploaded`, "ok");
      done(made);
    } catch (e) {
      result.appendChild(problemList(e));
    }
    submit.disabled = false;
  };
  return h("form", { class: "flow-upload", onsubmit: upload, dataset: { test: "flow-upload-form" } },
    name ? field("Flow name", name, "A new name makes a new flow; an existing one gets a new version.") : null,
    field("SCXML file", file, "Or paste the document below."),
    field("Document", source),
    result, submit);
}

route("flows", async (_params, main) => {
  main.appendChild(pageHeader("Flows"));
  const { flows } = await api("GET", "/admin/flows");
  const rows = Object.values(flows);
  main.appendChild(section("Flows", table([
    { label: "Flow", value: (f) => flowLink(f.name) },
    { label: "Current version", class: "num", value: (f) => text(f.current) },
    { label: "Versions", class: "num", value: (f) => String((f.versions || []).length) },
    { label: "Last upload", value: (f) => formatTime(((f.versions || []).at(-1) || {}).created_at) },
    { label: "Last refusal", value: (f) => ((f.refused || []).length ? h("span", { class: "bad" }, f.refused.join("; ")) : "—") },
  ], rows, { test: "flow-table", empty: "No flow is loaded." })));
  if (may("flows.write")) {
    main.appendChild(section("Upload a flow", uploadForm(null, (made) => go("#/flows/" + encodeURIComponent(made.name)))));
  }
});

route("flows/:name", async ({ name }, main) => {
  main.appendChild(pageHeader(`Flow ${name}`, h("a", { href: "#/flows", class: "button" }, "All flows")));
  const path = `/admin/flows/${encodeURIComponent(name)}`;
  const [flow, sessions] = await Promise.all([api("GET", path), api("GET", path + "/sessions").catch(() => ({ versions: [] }))]);
  const counts = new Map((sessions.versions || []).map((v) => [v.version, v]));
  const versions = [...(flow.versions || [])].sort((a, b) => b.version - a.version);
  const chartBox = h("div", { dataset: { test: "flow-chart" } });
  const chartTitle = h("h2", {});
  const show = async (version) => {
    clear(chartTitle).append(`Version ${version}`, version === flow.current ? " (current)" : "");
    clear(chartBox).appendChild(h("p", { class: "muted" }, "Loading…"));
    try {
      const source = await api("GET", path, undefined, { query: { format: "scxml", version } });
      clear(chartBox).appendChild(stateChart(String(source), [], { width: chartWidth(chartBox) }));
    } catch (e) {
      clear(chartBox).appendChild(h("p", { class: "form-error" }, e.message));
    }
  };
  main.appendChild(section("Versions", table([
    { label: "Version", class: "num", value: (v) => h("span", { dataset: { test: "flow-version" } }, String(v.version)) },
    { label: "", value: (v) => (v.version === flow.current ? h("span", { class: "badge" }, "current") : "") },
    { label: "Uploaded", value: (v) => formatTime(v.created_at) },
    { label: "States", class: "num", value: (v) => text(v.states) },
    { label: "Sessions running", class: "num", value: (v) => h("span", { dataset: { test: "running" } }, text((counts.get(v.version) || {}).running ?? 0)) },
    { label: "Ended", class: "num", value: (v) => text((counts.get(v.version) || {}).ended ?? 0) },
    { label: "Hash", value: (v) => h("span", { class: "mono", title: v.hash }, String(v.hash || "").slice(0, 12)) },
    { label: "", value: (v) => button("Show chart", () => show(v.version), { test: "show-chart" }) },
  ], versions, { test: "flow-versions", empty: "No version is loaded (see the refusal below)." })));
  if ((flow.refused || []).length) {
    main.appendChild(section(versions.length ? "Last refusal (the current version keeps serving)" : "Last refusal", h("ul", { class: "bad" }, flow.refused.map((p) => h("li", {}, p)))));
  }
  main.appendChild(h("section", { class: "panel" }, chartTitle, chartBox));
  if (may("flows.write")) {
    main.appendChild(section("Upload a new version", uploadForm(name, () => go("#/flows/" + encodeURIComponent(name)))));
  }
  if (versions.length) await show(flow.current ?? versions[0].version);
});
