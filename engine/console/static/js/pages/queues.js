// Queues (Callbacks > Queues): per virtual queue the callbacks waiting, the estimated wait and the
// agents staffed, busy and ready, read every 2 s from GET /admin/queues (memory only: cheap).
import { api, clear, formatTime, h, menu, pageHeader, poll, route, table, text } from "../core.js";

menu("Callbacks", "Queues", "#/queues", "queues.read");

const REFRESH_MS = 2000;

// 75 -> "1 min 15 s"; the estimate is an estimate, so whole seconds are precise enough.
export function duration(seconds) {
  if (seconds === undefined || seconds === null) return "—";
  const s = Math.round(Number(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function figure(label, value, test) {
  return h("div", { class: "figure", dataset: { test } }, h("span", { class: "figure-value" }, value), h("span", { class: "figure-label" }, label));
}

function queuePanel(q) {
  const waiting = q.callbacks_waiting || [];
  return h("section", { class: "panel queue", dataset: { test: "queue", queue: q.name } },
    h("h2", {}, q.name),
    h("div", { class: "figures" },
      figure("waiting", text(q.waiting), "queue-waiting"),
      figure("callbacks in the queue", text(q.callbacks_in_queue), "queue-callbacks-in"),
      figure("estimated wait", duration(q.ewt_seconds), "queue-ewt"),
      figure("agents staffed", text(q.agents_staffed), "queue-staffed"),
      figure("busy", text(q.agents_busy), "queue-busy"),
      figure("ready", text(q.agents_ready), "queue-ready")),
    table([
      { label: "Position", class: "num", value: (c) => (c.position === null || c.position === undefined ? h("span", { class: "muted", title: "an agent is being reserved or the customer dialled" }, "—") : String(c.position)) },
      { label: "Callback", value: (c) => h("a", { href: "#/callbacks/" + encodeURIComponent(c.id), class: "mono", dataset: { test: "queue-callback" } }, c.id) },
      { label: "Service", value: (c) => text(c.service) },
      { label: "Number", value: (c) => text(c.number) },
      { label: "State", value: (c) => h("span", { class: `state state-${String(c.state || "").replace(/[^A-Z_]/g, "")}` }, text(c.state)) },
      { label: "Waiting since", value: (c) => formatTime(c.since) },
    ], waiting, { empty: "No callback is in this queue.", test: "queue-callbacks" }));
}

route("queues", async (_params, main) => {
  const updated = h("span", { class: "muted", dataset: { test: "queues-updated" } });
  const body = h("div", { class: "queues", dataset: { test: "queues" }, "aria-busy": "true" });
  const error = h("p", { class: "form-error", role: "alert" });
  main.appendChild(pageHeader("Queues", updated));
  main.appendChild(h("p", { class: "muted" }, `Every virtual queue of the contact center, refreshed every ${REFRESH_MS / 1000} s.`));
  main.appendChild(error);
  main.appendChild(body);
  poll(async () => {
    try {
      const { queues, now } = await api("GET", "/admin/queues");
      error.textContent = "";
      clear(body).append(...(queues.length ? queues.map(queuePanel) : [h("p", { class: "empty" }, "The contact center has no queue.")]));
      clear(updated).append("Updated ", formatTime(now));
    } catch (e) {
      error.textContent = e.message;
    }
    body.removeAttribute("aria-busy");
  }, REFRESH_MS);
});
