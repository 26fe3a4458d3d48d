// The per-day chart as inline SVG: bars for orders placed, a line for revenue.

import { fmtCompactMoney, fmtInt, fmtMoney } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const W = 440;
const H = 200;
const PAD = { top: 14, right: 46, bottom: 26, left: 34 };
const DAYS = 14;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
  "Dec"];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children) {
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const TICKS = 4;

/** A round axis maximum at or above `value`: TICKS equal steps of a "nice" size. */
function niceMax(value, whole) {
  const raw = Math.max(value, 1) / TICKS;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    const size = step * power;
    if (size >= raw && (!whole || Number.isInteger(size))) return size * TICKS;
  }
  return Math.ceil(raw) * TICKS;
}

const isoDay = (date) => date.toISOString().slice(0, 10);

/** `DAYS` consecutive UTC days ending today (or at the newest bucket), zeros filled in. */
function window14(byDay) {
  const buckets = new Map(byDay.map((d) => [d.day, d]));
  const today = isoDay(new Date());
  const newest = byDay.length ? byDay[byDay.length - 1].day : today;
  const end = new Date(`${newest > today ? newest : today}T00:00:00Z`);
  const days = [];
  for (let i = DAYS - 1; i >= 0; i--) {
    const day = isoDay(new Date(end.getTime() - i * 86400000));
    const b = buckets.get(day);
    days.push({ day, placed: b ? b.placed : 0, cancelled: b ? b.cancelled : 0,
      shipped: b ? b.shipped : 0, revenue: b ? Number(b.revenue) : 0 });
  }
  return days;
}

function label(day) {
  const [, month, date] = day.split("-");
  return `${Number(date)} ${MONTHS[Number(month) - 1]}`;
}

/** Draw the chart into `container`, replacing what was there. */
export function renderChart(container, byDay) {
  const days = window14(byDay || []);
  const maxOrders = niceMax(Math.max(...days.map((d) => d.placed), 4), true);
  const maxRevenue = niceMax(Math.max(...days.map((d) => d.revenue), 100), false);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const slot = innerW / days.length;
  const barW = Math.max(4, slot * 0.62);
  const y = (n) => PAD.top + innerH - (n / maxOrders) * innerH;
  const yr = (r) => PAD.top + innerH - (r / maxRevenue) * innerH;
  const cx = (i) => PAD.left + slot * i + slot / 2;

  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "Orders placed and revenue per day, last 14 days" });
  const grid = svg("g", { class: "grid" });
  for (let t = 0; t <= TICKS; t++) {
    const gy = PAD.top + innerH - (t / TICKS) * innerH;
    grid.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: gy, y2: gy }));
    grid.append(svg("text", { x: PAD.left - 6, y: gy + 3.5, class: "axis left" },
      fmtInt((maxOrders * t) / TICKS)));
    grid.append(svg("text", { x: W - PAD.right + 6, y: gy + 3.5, class: "axis right" },
      fmtCompactMoney((maxRevenue * t) / TICKS)));
  }
  root.append(grid);

  const bars = svg("g", { class: "bars" });
  const values = svg("g", { class: "values" }); // drawn last, above the revenue line
  days.forEach((d, i) => {
    const top = y(d.placed);
    const bar = svg("rect", { x: cx(i) - barW / 2, y: top, width: barW,
      height: Math.max(0, PAD.top + innerH - top), rx: 3,
      class: d.placed ? "bar" : "bar zero", "data-day": d.day });
    bar.append(svg("title", {}, `${label(d.day)}: ${fmtInt(d.placed)} placed, ` +
      `${fmtInt(d.shipped)} shipped, ${fmtInt(d.cancelled)} cancelled, ` +
      `revenue ${fmtMoney(d.revenue)}`));
    bars.append(bar);
    if (d.placed) {
      values.append(svg("text", { x: cx(i), y: top - 5, class: "bar-value" }, fmtInt(d.placed)));
    }
    if (i % 2 === 1) {
      bars.append(svg("text", { x: cx(i), y: H - 8, class: "axis bottom" }, label(d.day)));
    }
  });
  root.append(bars);

  const points = days.map((d, i) => `${cx(i).toFixed(1)},${yr(d.revenue).toFixed(1)}`);
  const line = svg("g", { class: "revenue" });
  const area = `${PAD.left + slot / 2},${PAD.top + innerH} ${points.join(" ")} ` +
    `${cx(days.length - 1)},${PAD.top + innerH}`;
  line.append(svg("polygon", { points: area, class: "area" }));
  line.append(svg("polyline", { points: points.join(" "), class: "line" }));
  days.forEach((d, i) => {
    if (!d.revenue) return;
    const dot = svg("circle", { cx: cx(i), cy: yr(d.revenue), r: 3.5, class: "dot" });
    dot.append(svg("title", {}, `${label(d.day)}: revenue ${fmtMoney(d.revenue)}`));
    line.append(dot);
  });
  root.append(line, values);
  container.replaceChildren(root);
}
