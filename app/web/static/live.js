// Live figures: the dashboard from /dashboard and its SSE stream, projection lag by polling.

import { get } from "./api.js";
import { renderChart } from "./chart.js";
import { fmtInt, fmtMoney, h } from "./dom.js";

const COUNTERS = ["placed", "open", "shipped", "cancelled"];
const LAG_POLL_MS = 2000;
const BAD_STATES = new Set(["sink_down", "stopped", "stopped_on_poison", "never_ran"]);

let shown = null;

function setCounter(name, text) {
  const el = document.querySelector(`[data-testid="counter-${name}"]`);
  if (el.textContent === text) return;
  const first = el.textContent === "–";
  el.textContent = text;
  if (!first) {
    const card = el.closest(".counter");
    card.classList.remove("bump");
    void card.offsetWidth; // restart the animation
    card.classList.add("bump");
  }
}

function renderTopSkus(list) {
  const target = document.getElementById("top-skus");
  if (!list.length) {
    target.replaceChildren(h("li", { class: "muted empty-skus" }, "No orders yet"));
    return;
  }
  const max = Math.max(...list.map((s) => s.quantity), 1);
  target.replaceChildren(...list.slice(0, 8).map((s) => h("li",
    { dataset: { testid: "top-sku", sku: s.sku } },
    h("span", { class: "sku" }, s.sku),
    h("span", { class: "meter" },
      h("span", { class: "fill", style: `width:${((s.quantity / max) * 100).toFixed(1)}%` })),
    h("span", { class: "qty" }, fmtInt(s.quantity)))));
}

/** Show one dashboard body (the JSON of /dashboard). */
export function showDashboard(body) {
  shown = body;
  for (const name of COUNTERS) setCounter(name, fmtInt(body.orders[name]));
  setCounter("gross", fmtMoney(body.revenue.gross));
  setCounter("net", fmtMoney(body.revenue.net));
  document.querySelector('[data-testid="position"]').textContent = fmtInt(body.position);
  renderChart(document.getElementById("chart"), body.by_day);
  renderTopSkus(body.top_skus);
}

function setLive(state, text) {
  const el = document.querySelector('[data-testid="live"]');
  el.dataset.state = state;
  el.querySelector(".live-text").textContent = text;
}

/** The dashboard now, then every update the server pushes. */
export function startDashboard() {
  get("/dashboard").then(({ data }) => { if (!shown) showDashboard(data); }, () => {});
  const source = new EventSource("/dashboard/stream");
  source.addEventListener("open", () => setLive("live", "live"));
  source.addEventListener("dashboard", (event) => {
    setLive("live", "live");
    showDashboard(JSON.parse(event.data));
  });
  source.addEventListener("error", () => setLive("down", "reconnecting"));
  window.addEventListener("pagehide", () => source.close());
}

function lagText(p) {
  if (p.lag_events === null || p.lag_events === undefined) return p.state.replaceAll("_", " ");
  if (p.lag_events === 0) return "in sync";
  return `${fmtInt(p.lag_events)} behind · ${p.lag_seconds.toFixed(1)}s`;
}

function health(p) {
  if (BAD_STATES.has(p.state) || p.lag_events === null) return "down";
  if (p.lag_events > 0 || p.state === "stalled") return "behind";
  return "ok";
}

function projectionRow(p) {
  const lag = p.lag_events === null ? "–"
    : p.lag_events === 0 ? "in sync" : `${fmtInt(p.lag_events)} · ${p.lag_seconds.toFixed(1)} s`;
  return h("tr", { dataset: { testid: "projection", name: p.name, state: health(p) } },
    h("td", {}, p.name,
      p.dead_letters ? h("span", { class: "dead", title: "events set aside as dead letters" },
        ` · ${fmtInt(p.dead_letters)} dead`) : null),
    h("td", {}, h("span", { class: "state" }, h("span", { class: "dot" }),
      p.state.replaceAll("_", " "))),
    h("td", { class: "num" },
      `${p.position === null ? "?" : fmtInt(p.position)} / ${fmtInt(p.head)}`),
    h("td", { class: "num" }, lag));
}

function showLag(projections) {
  document.getElementById("projections").replaceChildren(...projections.map(projectionRow));
  for (const p of projections) {
    const el = document.querySelector(`[data-testid="lag-${p.name}"]`);
    if (!el) continue;
    const state = health(p);
    el.dataset.state = state;
    el.dataset.lagEvents = p.lag_events ?? "";
    el.querySelector(".lag-value").textContent = lagText(p);
    el.title = `${p.name}: ${p.state}, position ${p.position ?? "?"} of ${p.head}` +
      (p.dead_letters ? `, ${p.dead_letters} dead letters` : "");
  }
}

/** Poll /admin/projections every 2 s (never two requests at once). */
export function startLag() {
  const tick = async () => {
    try {
      showLag((await get("/admin/projections")).data.projections);
    } catch {
      for (const el of document.querySelectorAll(".lag-item")) {
        el.dataset.state = "down";
        el.querySelector(".lag-value").textContent = "unknown";
      }
    }
    setTimeout(tick, LAG_POLL_MS);
  };
  tick();
}
