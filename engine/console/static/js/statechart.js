// An SCXML document drawn as an SVG state chart: compound states as boxes holding their children
// (laid left to right in rows that wrap), parallel states with their regions side by side in a
// dashed frame, the initial state marked with a dot, final states double-framed, transitions as
// arrows labelled with their event, active states highlighted.
//
// The document comes from the engine but its ids and events were written by whoever uploaded the
// flow: every name goes into the SVG as a text node (h() makes text nodes), never as markup.
import { h } from "./core.js";

const SCXML_NS = "http://www.w3.org/2005/07/scxml";
const STATE_TAGS = new Set(["state", "parallel", "final", "history"]);

// Sizes in px. The gaps between boxes leave room for the arrows and their labels.
const CHAR = 7.6;        // width of a character of the 12 px labels where nothing can measure it
const LEAF_H = 34;
const LEAF_MIN_W = 84;
const HEAD = 24;         // a container's title line
const PAD = 20;          // inside a container, around its children
const GAP_X = 60;
const GAP_Y = 58;
const COND_MAX = 22;
const LABEL_SCALE = 10.5 / 12; // arrow labels are 10.5 px, measured at 12     // a condition shown on an arrow is cut to this many characters

export class ChartError extends Error {}

// The state tree of an SCXML text: {id, kind, children, transitions, initial, root?}.
export function parseChart(source) {
  const doc = new DOMParser().parseFromString(source, "application/xml");
  const root = doc.documentElement;
  if (!root || root.getElementsByTagName("parsererror").length || root.localName !== "scxml") {
    throw new ChartError("the document is not SCXML the browser can read");
  }
  let anonymous = 0;
  const build = (el, kind) => {
    const node = {
      id: el.getAttribute("id") || (kind === "scxml" ? el.getAttribute("name") || "scxml" : `(${el.localName} ${++anonymous})`),
      kind, children: [], transitions: [], initial: null, parent: null,
    };
    for (const child of el.children) {
      if (child.namespaceURI !== SCXML_NS) continue;
      if (STATE_TAGS.has(child.localName)) {
        const sub = build(child, child.localName);
        sub.parent = node;
        node.children.push(sub);
      } else if (child.localName === "transition") {
        node.transitions.push({
          event: (child.getAttribute("event") || "").trim(),
          cond: (child.getAttribute("cond") || "").trim(),
          targets: (child.getAttribute("target") || "").split(/\s+/).filter(Boolean),
        });
      } else if (child.localName === "initial") {
        const t = [...child.children].find((c) => c.localName === "transition");
        if (t) node.initial = (t.getAttribute("target") || "").split(/\s+/)[0] || null;
      }
    }
    const attr = el.getAttribute("initial");
    if (attr) node.initial = attr.split(/\s+/)[0];
    if (!node.initial && kind !== "parallel" && node.children.length) node.initial = node.children[0].id;
    return node;
  };
  return build(root, "scxml");
}

// The width of a label in the chart's 12 px font (measured on a canvas, which draws nothing).
let pen = null;
function textWidth(words, bold = false) {
  if (pen === null) {
    const family = getComputedStyle(document.body).fontFamily || "sans-serif";
    pen = { ctx: document.createElement("canvas").getContext("2d"), family };
  }
  if (!pen.ctx) return words.length * CHAR;
  pen.ctx.font = `${bold ? "600 " : ""}12px ${pen.family}`;
  return pen.ctx.measureText(words).width;
}

function isContainer(node) {
  return node.children.length > 0;
}

// Sizes every box (w, h) and places children relative to their parent (x, y); `room` is the width
// a container may fill before its row wraps.
function layout(node, room) {
  if (!isContainer(node)) {
    node.w = Math.max(LEAF_MIN_W, Math.ceil(textWidth(node.id)) + 28);
    node.h = LEAF_H;
    return;
  }
  const inner = Math.max(room - 2 * PAD, LEAF_MIN_W);
  const top = node.kind === "scxml" ? PAD / 2 : HEAD + PAD / 2;
  if (node.kind === "parallel") {
    // Regions side by side, never wrapped: a parallel state's regions run at the same time.
    const share = Math.max(inner / node.children.length - GAP_X, 160);
    let x = PAD;
    let tallest = 0;
    for (const child of node.children) {
      layout(child, share);
      child.x = x;
      child.y = top;
      x += child.w + GAP_X / 2;
      tallest = Math.max(tallest, child.h);
    }
    node.w = x - GAP_X / 2 + PAD;
    node.h = top + tallest + PAD;
  } else {
    let x = PAD;
    let y = top;
    let rowHeight = 0;
    let widest = 0;
    let previous = null;
    for (const child of node.children) {
      layout(child, inner);
      // Neighbours an arrow joins are set apart enough for its label.
      const gap = previous ? gapBetween(previous, child) : 0;
      if (x > PAD && x + gap + child.w > PAD + inner) {
        x = PAD;
        y += rowHeight + GAP_Y;
        rowHeight = 0;
      } else {
        x += gap;
      }
      child.x = x;
      child.y = y;
      x += child.w;
      rowHeight = Math.max(rowHeight, child.h);
      widest = Math.max(widest, x);
      previous = child;
    }
    node.w = Math.max(widest + PAD, Math.ceil(textWidth(node.id, true)) + 2 * PAD);
    node.h = y + rowHeight + PAD;
  }
}

function gapBetween(a, b) {
  const joining = [...a.transitions.filter((t) => t.targets.includes(b.id)), ...b.transitions.filter((t) => t.targets.includes(a.id))];
  return Math.max(GAP_X, ...joining.map((t) => textWidth(label(t)) + 20));
}

// Absolute positions, and every node by id.
function place(node, dx, dy, byId) {
  node.ax = dx + (node.x || 0);
  node.ay = dy + (node.y || 0);
  byId.set(node.id, node);
  for (const child of node.children) place(child, node.ax, node.ay, byId);
}

function contains(outer, inner) {
  for (let n = inner.parent; n; n = n.parent) if (n === outer) return true;
  return false;
}

// Where the line from (px, py) to the box's centre crosses the box's border.
function border(box, px, py) {
  const cx = box.ax + box.w / 2;
  const cy = box.ay + box.h / 2;
  const dx = px - cx;
  const dy = py - cy;
  if (!dx && !dy) return [cx, cy];
  const scale = Math.min(dx ? box.w / 2 / Math.abs(dx) : Infinity, dy ? box.h / 2 / Math.abs(dy) : Infinity);
  return [cx + dx * scale, cy + dy * scale];
}

function shorten(cond) {
  return cond.length > COND_MAX ? cond.slice(0, COND_MAX - 1) + "…" : cond;
}

function label(t) {
  const cond = t.cond ? `[${shorten(t.cond)}]` : "";
  return [t.event, cond].filter(Boolean).join(" ");
}

function tooltip(t) {
  return [t.event ? `on ${t.event}` : "without an event", t.cond ? `if ${t.cond}` : ""].filter(Boolean).join(" ");
}

// The arrow of one transition: a gentle curve (so arrows both ways between two boxes do not
// overlap), or a loop on the box's right edge when it targets its own state.
// `labels` places the label where it hides the fewest other labels and states.
function arrow(from, to, t, index, labels) {
  let path;
  let at;
  if (from === to) {
    const x = from.ax + from.w;
    const y = from.ay + 8 + (index % 3) * 6;
    path = `M ${x} ${y} C ${x + 30} ${y - 18}, ${x + 30} ${y + 24}, ${x} ${y + 14}`;
    at = () => [x + 26, y - 6];
  } else {
    let start;
    let end;
    if (contains(from, to)) {
      // From a container to a state inside it: down from the container's title line.
      start = [to.ax + to.w / 2 + 10, from.ay + HEAD];
      end = border(to, start[0], start[1]);
    } else if (contains(to, from)) {
      // Into the container that holds the source (it is entered again): up to its title line.
      start = border(from, from.ax + from.w / 2, to.ay);
      end = [start[0] + 10, to.ay + HEAD];
    } else {
      start = border(from, to.ax + to.w / 2, to.ay + to.h / 2);
      end = border(to, from.ax + from.w / 2, from.ay + from.h / 2);
    }
    const [x1, y1] = start;
    const [x2, y2] = end;
    const length = Math.hypot(x2 - x1, y2 - y1) || 1;
    const bend = Math.min(36, length * 0.18) * (index % 2 ? -1 : 1);
    const cx = (x1 + x2) / 2 + (-(y2 - y1) / length) * bend;
    const cy = (y1 + y2) / 2 + ((x2 - x1) / length) * bend;
    path = `M ${x1} ${y1} Q ${cx} ${cy} ${x2} ${y2}`;
        at = (s) => [(1 - s) ** 2 * x1 + 2 * (1 - s) * s * cx + s ** 2 * x2, (1 - s) ** 2 * y1 + 2 * (1 - s) * s * cy + s ** 2 * y2 - 2];
  }
  const words = label(t);
  let text = null;
  if (words) {
    const [lx, ly] = labels.place(words, at);
    text = h("text", { x: lx, y: ly, class: "t-label", "text-anchor": "middle" }, words);
  }
  return h("g", { class: "transition", dataset: { event: t.event } },
    h("title", {}, tooltip(t)),
    h("path", { d: path, class: "arrow", "marker-end": "url(#sc-arrow)" }),
    text);
}

// Where arrow labels go: of a few points along each arrow, the first whose label covers no label
// placed before it and no state's name; else the one that covers the least.
class LabelPlaces {
  constructor(leaves) {
    this.taken = leaves.map((n) => [n.ax, n.ay, n.ax + n.w, n.ay + n.h]);
  }

  place(words, at) {
    const w = textWidth(words) * LABEL_SCALE + 4;
    let best = null;
    for (const s of [0.5, 0.38, 0.62, 0.28, 0.72, 0.2, 0.8]) {
      const [x, y] = at(s);
      const rect = [x - w / 2, y - 10, x + w / 2, y + 3];
      const cover = this.taken.reduce((sum, r) => sum + overlap(rect, r), 0);
      if (best === null || cover < best.cover) best = { x, y, rect, cover };
      if (cover === 0) break;
    }
    this.taken.push(best.rect);
    return [best.x, best.y];
  }
}

function overlap(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  return w > 0 && h > 0 ? w * h : 0;
}

function box(node, active) {
  const on = active.has(node.id);
  const kind = node.kind === "state" && isContainer(node) ? "compound" : node.kind;
  const quiet = node.transitions.filter((t) => !t.targets.length && t.event).map((t) => t.event);
  const g = h("g", { class: `state ${kind}${on ? " active" : ""}`, dataset: { state: node.id, kind, active: on ? "true" : "false" } },
    h("title", {}, `${node.kind} ${node.id}` + (quiet.length ? `; handles ${quiet.join(", ")} without leaving` : "")),
    h("rect", { x: node.ax, y: node.ay, width: node.w, height: node.h, rx: node.kind === "final" ? 17 : 8, class: "frame" }));
  if (node.kind === "final") {
    g.appendChild(h("rect", { x: node.ax + 4, y: node.ay + 4, width: node.w - 8, height: node.h - 8, rx: 13, class: "inner-frame" }));
  }
  if (isContainer(node)) {
    g.appendChild(h("text", { x: node.ax + 10, y: node.ay + 16, class: "s-title" }, node.kind === "parallel" ? `${node.id} (parallel)` : node.id));
  } else {
    g.appendChild(h("text", { x: node.ax + node.w / 2, y: node.ay + node.h / 2 + 4, class: "s-label", "text-anchor": "middle" }, node.id));
  }
  return g;
}

// The dot and short arrow that mark a container's initial child.
function initialMark(node, byId) {
  const target = byId.get(node.initial);
  if (!target || target.parent !== node) return null;
  const y = target.ay + Math.min(target.h / 2, LEAF_H / 2);
  const x = target.ax - 16;
  return h("g", { class: "initial", dataset: { initial: target.id } },
    h("title", {}, `${node.kind === "scxml" ? "the flow" : node.id} starts in ${target.id}`),
    h("circle", { cx: x, cy: y, r: 5 }),
    h("path", { d: `M ${x + 5} ${y} L ${target.ax - 1} ${y}`, class: "arrow", "marker-end": "url(#sc-arrow)" }));
}

// The chart of `source` (SCXML text) with `activeStates` (ids) highlighted, as an element that
// scrolls sideways when the chart is wider than `width`.
export function stateChart(source, activeStates = [], { width = 1040 } = {}) {
  const tree = parseChart(source);
  layout(tree, width);
  const byId = new Map();
  place(tree, 0, 0, byId);
  const active = new Set(activeStates);
  const svg = h("svg", {
    class: "statechart", width: tree.w, height: tree.h, viewBox: `0 0 ${tree.w} ${tree.h}`, role: "img",
    "aria-label": `State chart of ${tree.id}` + (active.size ? `; active: ${[...active].join(", ")}` : ""),
    dataset: { test: "statechart" },
  }, h("defs", {}, h("marker", { id: "sc-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    h("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }))));
  const boxes = h("g", { class: "boxes" });
  const marks = h("g", { class: "marks" });
  const arrows = h("g", { class: "arrows" });
  const labels = new LabelPlaces([...byId.values()].filter((n) => !isContainer(n)));
  const walk = (node) => {
    if (node.kind !== "scxml") boxes.appendChild(box(node, active));
    const mark = node.kind !== "parallel" && isContainer(node) ? initialMark(node, byId) : null;
    if (mark) marks.appendChild(mark);
    node.transitions.forEach((t, i) => {
      for (const target of t.targets) {
        const to = byId.get(target);
        if (to) arrows.appendChild(arrow(node, to, t, i, labels));
      }
    });
    node.children.forEach(walk);
  };
  walk(tree);
  svg.append(boxes, marks, arrows);
  return h("div", { class: "statechart-scroll", tabindex: "0", "aria-label": "State chart (scrolls sideways when wide)" }, svg);
}

// The width a chart drawn into `box` may fill before its rows wrap: the box's, once it is shown.
export function chartWidth(box) {
  return Math.max(560, (box.clientWidth || 1040) - 4);
}

// Marks other states active on a drawn chart (the page polls the session and keeps its chart).
export function markActive(chart, activeStates) {
  const active = new Set(activeStates);
  chart.querySelectorAll("g.state").forEach((g) => {
    const on = active.has(g.dataset.state);
    g.dataset.active = on ? "true" : "false";
    g.classList.toggle("active", on);
  });
}
