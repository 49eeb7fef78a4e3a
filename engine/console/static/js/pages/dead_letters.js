// Dead letters (Operations > Dead letters): status notifications and pushes that gave up after
// their last attempt, oldest first, with Replay (sent again from a first attempt).
import { api, button, clear, formatTime, h, may, menu, pageHeader, route, section, table, text, toast } from "../core.js";

menu("Operations", "Dead letters", "#/dead-letters", "dead_letters.read");

const LIMIT = 50;

route("dead-letters", async (_params, main) => {
  main.appendChild(pageHeader("Dead letters"));
  main.appendChild(h("p", { class: "muted" }, "Deliveries that gave up after their last attempt (oldest first). Replay sends one again, with a fresh set of attempts."));
  const body = h("div", { dataset: { test: "dead-letters" } });
  main.appendChild(section("Dead letters", body));
  let offset = 0;
  const load = async () => {
    // One more than a page tells whether there is a next page (the list has no total).
    const { dead_letters: found } = await api("GET", "/admin/dead-letters", undefined, { query: { limit: LIMIT + 1, offset } });
    const rows = found.slice(0, LIMIT);
    clear(body);
    body.appendChild(table(columns(load), rows, { test: "dead-letter-table", empty: offset ? "No more dead letters." : "No dead letters: every delivery got through or is still being tried." }));
    body.appendChild(h("div", { class: "pager", dataset: { test: "pager" } },
      h("span", {}, rows.length ? `Showing ${offset + 1}–${offset + rows.length}` : ""),
      button("Previous", () => { offset = Math.max(0, offset - LIMIT); load(); }, { disabled: offset === 0, test: "prev" }),
      button("Next", () => { offset += LIMIT; load(); }, { disabled: found.length <= LIMIT, test: "next" })));
  };
  await load();
});

function columns(reload) {
  const cols = [
    { label: "Id", class: "num", value: (d) => String(d.id) },
    { label: "Type", value: (d) => d.type },
    { label: "Target", value: (d) => h("span", { class: "mono" }, text(d.target)) },
    { label: "Attempts", class: "num", value: (d) => `${text(d.attempts)} / ${text(d.max_attempts)}` },
    { label: "Last error", value: (d) => h("span", { class: "bad" }, text(d.last_error)) },
    { label: "Created", value: (d) => formatTime(d.created_at) },
    { label: "Message", value: (d) => h("details", {}, h("summary", {}, "show"), h("pre", { class: "message" }, JSON.stringify(d.message, null, 2))) },
  ];
  if (may("dead_letters.replay")) {
    cols.push({ label: "", value: (d) => button("Replay", async (event) => {
      event.target.disabled = true;
      try {
        const answer = await api("POST", `/admin/dead-letters/${encodeURIComponent(d.id)}/replay`);
        toast(`Dead letter ${answer.id} replayed: ${answer.status}`, "ok");
        await reload();
      } catch (e) {
        toast(e.message, "error");
        event.target.disabled = false;
      }
    }, { test: "replay" }) });
  }
  return cols;
}
