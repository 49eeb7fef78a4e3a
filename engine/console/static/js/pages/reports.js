// Reports (Operations > Reports): callback counts by day, service and outcome over a date range,
// as a table and a stacked bar chart (SVG drawn here), with the same numbers as CSV.
import { api, button, clear, field, h, menu, pageHeader, route, section, table } from "../core.js";

menu("Operations", "Reports", "#/reports", "reports.read");

const DAY_MS = 86400000;
const COLOURS = 8; // outcome colours in admin.css: .bar-0 ... .bar-7

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

// The range as the API takes it: from the start of the first day to the end of the last (UTC).
function rangeQuery(from, to, service) {
  return { from: from ? `${from}T00:00:00.000Z` : undefined, to: to ? `${to}T23:59:59.999Z` : undefined, service: service || undefined };
}

route("reports", async (_params, main) => {
  main.appendChild(pageHeader("Reports"));
  // Callbacks are dated on the engine's clock, which runs ahead of this one when the simulator's
  // time_scale is above 1: the range ends on the engine's today.
  const health = await api("GET", "/health").catch(() => ({}));
  const engineNow = new Date(health.clock || Date.now());
  const today = Number.isNaN(engineNow.getTime()) ? new Date() : engineNow;
  const from = h("input", { name: "from", type: "date", value: isoDay(new Date(today.getTime() - 6 * DAY_MS)) });
  const to = h("input", { name: "to", type: "date", value: isoDay(today) });
  const service = h("select", { name: "service" }, h("option", { value: "" }, "all services"));
  const csv = h("a", { class: "button", download: "callbacks-report.csv", href: "#", dataset: { test: "report-csv" } }, "Export CSV");
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "report-error" } });
  const chart = h("div", { class: "chart", dataset: { test: "report-chart" } });
  const rows = h("div", { dataset: { test: "report-rows" } });
  api("GET", "/admin/services").then(({ services }) => services.forEach((s) => service.appendChild(h("option", { value: s }, s))), () => {});
  const load = async (event) => {
    if (event) event.preventDefault();
    error.textContent = "";
    const query = rangeQuery(from.value, to.value, service.value);
    csv.setAttribute("href", "/admin/reports/callbacks?" + new URLSearchParams(Object.entries({ ...query, format: "csv" }).filter(([, v]) => v)));
    try {
      const report = await api("GET", "/admin/reports/callbacks", undefined, { query });
      drawChart(clear(chart), report.rows);
      clear(rows).appendChild(table([
        { label: "Day", value: (r) => r.day },
        { label: "Service", value: (r) => r.service },
        { label: "Outcome", value: (r) => r.outcome },
        { label: "Callbacks", class: "num", value: (r) => String(r.count) },
      ], report.rows, { test: "report-table", empty: "No callback was created in this range." }));
    } catch (e) {
      error.textContent = e.message;
      clear(chart);
      clear(rows);
    }
  };
  main.appendChild(h("form", { class: "filters", onsubmit: load, dataset: { test: "report-form" } },
    field("From", from), field("To", to), field("Service", service),
    button("Show", null, { kind: "primary", type: "submit", test: "report-show" }), csv));
  main.appendChild(error);
  main.appendChild(section("Callbacks per day by outcome", chart));
  main.appendChild(section("Counts", rows));
  await load();
});

// One stacked bar per day, one colour per outcome, with a legend; heights relative to the
// busiest day.
function drawChart(box, rows) {
  if (!rows.length) return;
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const outcomes = [...new Set(rows.map((r) => r.outcome))].sort();
  const totals = new Map(days.map((d) => [d, 0]));
  const byDay = new Map(days.map((d) => [d, new Map()]));
  for (const r of rows) {
    totals.set(r.day, totals.get(r.day) + r.count);
    byDay.get(r.day).set(r.outcome, (byDay.get(r.day).get(r.outcome) || 0) + r.count);
  }
  const max = Math.max(...totals.values(), 1);
  const bar = 36, gap = 18, left = 44, top = 12, height = 180, bottom = 40;
  const width = left + days.length * (bar + gap) + gap;
  const svg = h("svg", { viewBox: `0 0 ${width} ${top + height + bottom}`, width, height: top + height + bottom,
    role: "img", "aria-label": "Callbacks per day, stacked by outcome", class: "bars" });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + height - fraction * height;
    svg.appendChild(h("line", { x1: left - 4, x2: width, y1: y, y2: y, class: "grid-line" }));
    svg.appendChild(h("text", { x: left - 8, y: y + 4, "text-anchor": "end", class: "axis" }, String(Math.round(fraction * max))));
  }
  days.forEach((day, i) => {
    const x = left + gap + i * (bar + gap);
    let y = top + height;
    outcomes.forEach((outcome, k) => {
      const count = byDay.get(day).get(outcome) || 0;
      if (!count) return;
      const barHeight = (count / max) * height;
      y -= barHeight;
      svg.appendChild(h("rect", { x, y, width: bar, height: barHeight, class: `bar bar-${k % COLOURS}` },
        h("title", {}, `${day} ${outcome}: ${count}`)));
    });
    svg.appendChild(h("text", { x: x + bar / 2, y: top + height + 16, "text-anchor": "middle", class: "axis" }, day.slice(5)));
    svg.appendChild(h("text", { x: x + bar / 2, y: y - 4, "text-anchor": "middle", class: "axis total" }, String(totals.get(day))));
  });
  box.appendChild(h("div", { class: "chart-scroll" }, svg));
  box.appendChild(h("ul", { class: "legend" }, outcomes.map((o, k) => h("li", {}, h("span", { class: `swatch bar-${k % COLOURS}` }), o))));
}
