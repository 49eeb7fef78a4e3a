// Click-to-call-in records (Operations > Click-to-call-in): the callbacks a customer calls in for,
// with the access number and code they were given and until when the code works.
import { api, clear, formatTime, h, menu, pageHeader, pager, route, section, table } from "../core.js";

menu("Operations", "Click-to-call-in", "#/call-ins", "call_ins.read");

const LIMIT = 50;

route("call-ins", async (_params, main) => {
  main.appendChild(pageHeader("Click-to-call-in records"));
  const body = h("div", { dataset: { test: "call-ins" } });
  main.appendChild(section("Records", body));
  const load = async (offset) => {
    const answer = await api("GET", "/admin/call-ins", undefined, { query: { limit: LIMIT, offset } });
    clear(body).appendChild(table([
      { label: "Callback", value: (c) => h("a", { href: `#/callbacks/${encodeURIComponent(c.id)}`, class: "mono" }, c.id) },
      { label: "Service", value: (c) => c.service },
      { label: "Customer number", value: (c) => c.number },
      { label: "Access number", value: (c) => c.access_number },
      { label: "Access code", value: (c) => h("code", {}, c.access_code || "—") },
      { label: "Code expires", value: (c) => formatTime(c.expires) },
      { label: "State", value: (c) => h("span", { class: "state state-" + c.state }, c.state) },
    ], answer.call_ins, { test: "call-in-table", empty: "No click-to-call-in callback yet." }));
    body.appendChild(pager(answer.total ?? answer.call_ins.length, LIMIT, offset, load));
  };
  await load(0);
});
