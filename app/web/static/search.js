// The search box: suggestions as you type, results with highlights, status facets, paging,
// and Cancel / Ship commands with optimistic rows.

import { get, post, query } from "./api.js";
import { debounce, fmtDate, fmtInt, fmtMoney, h, highlighted, toast, withPrefix } from "./dom.js";

const STATUSES = ["placed", "shipped", "cancelled"];
const PAGE = 25;
const WAIT_MS = 2000;
const SNIPPET_LABELS = {
  "items.name": "items", "items.sku": "sku", tracking_number: "tracking",
  cancel_reason: "reason",
};
const COMMANDS = {
  cancel: { optimistic: "cancelled", body: () => ({ reason: "cancelled from dashboard" }) },
  ship: { optimistic: "shipped", body: () => ({ tracking_number: trackingNumber() }) },
};

const state = {
  q: "",
  statuses: new Set(),
  sort: "-placed_at",
  hits: [],
  total: 0,
  facets: {},
  cursor: null,
  seq: 0,
  pending: new Map(), // order_id -> the status shown while its command is in flight
  errors: new Map(), // order_id -> the last command's error message
};

const els = {};

function trackingNumber() {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `DSH${Array.from(random, (n) => n.toString(36).toUpperCase().padStart(7, "0")).join("")}`;
}

/* ---------- results ---------- */

function effectiveSort() {
  return state.sort === "relevance" && !state.q ? "-placed_at" : state.sort;
}

/** Run the search; `append` loads the next page, `minPosition` waits for a write. */
async function runSearch({ append = false, minPosition = null } = {}) {
  const seq = ++state.seq;
  const params = {
    q: state.q, status: [...state.statuses], sort: effectiveSort(),
    size: append ? PAGE : Math.min(100, Math.max(PAGE, state.hits.length)),
    cursor: append ? state.cursor : null,
    wait_ms: minPosition ? WAIT_MS : null,
  };
  const headers = minPosition ? { "X-Min-Position": String(minPosition) } : {};
  els.results.setAttribute("aria-busy", "true");
  try {
    const { data } = await get(`/search/orders${query(params)}`, { headers });
    if (seq !== state.seq) return;
    state.hits = append ? [...state.hits, ...data.hits] : data.hits;
    state.total = data.total;
    state.facets = data.facets.status;
    state.cursor = data.next_cursor;
    els.error.hidden = true;
    render();
  } catch (err) {
    if (seq !== state.seq) return;
    if (minPosition && err.code === "ProjectionBehind") return; // keep the settled rows
    els.error.textContent = `Search failed: ${err.message}`;
    els.error.hidden = false;
  } finally {
    if (seq === state.seq) els.results.removeAttribute("aria-busy");
  }
}

function renderFacets() {
  const chips = STATUSES.map((status) => h("button", {
    type: "button", class: "chip", "data-status": status,
    "aria-pressed": String(state.statuses.has(status)),
    dataset: { testid: `facet-${status}` },
    onclick: () => {
      if (state.statuses.has(status)) state.statuses.delete(status);
      else state.statuses.add(status);
      runSearch();
    },
  }, h("span", { class: "chip-dot" }), status,
  h("span", { class: "count" }, fmtInt(state.facets[status] ?? 0))));
  els.facets.replaceChildren(...chips);
}

function snippets(hit) {
  const lines = [];
  for (const [field, label] of Object.entries(SNIPPET_LABELS)) {
    const fragments = hit.highlight?.[field];
    if (!fragments?.length) continue;
    const body = h("span", { class: "frag" });
    fragments.slice(0, 3).forEach((fragment, i) => {
      if (i) body.append(", ");
      body.append(highlighted(fragment));
    });
    lines.push(h("div", { class: "snippet", dataset: { testid: "row-snippet", field } },
      h("span", { class: "snippet-label" }, label), body));
  }
  return lines;
}

function renderRow(hit) {
  const id = hit.order_id;
  const pending = state.pending.get(id);
  const status = pending ?? hit.status;
  const error = state.errors.get(id);
  const name = hit.highlight?.customer_name?.[0];
  const command = (kind, text) => h("button", {
    type: "button", class: `btn small ${kind}`,
    disabled: pending !== undefined,
    dataset: { testid: `${kind}-button`, unusual: status !== "placed" ? "true" : "false" },
    title: status !== "placed" ? `This order is ${status}; the server will decide` : null,
    onclick: () => runCommand(id, kind),
  }, text);
  return h("tr", {
    class: error ? "row has-error" : "row",
    dataset: { testid: "result-row", orderId: id, status,
      pending: pending !== undefined ? "true" : "false" },
  },
  h("td", { class: "who" },
    h("div", { class: "name", dataset: { testid: "row-customer" } },
      name ? highlighted(name) : (hit.customer_name || hit.customer_id)),
    h("div", { class: "meta" }, hit.customer_id, h("span", { class: "sep" }, "·"),
      h("code", { title: id }, `#${id.slice(0, 8)}`)),
    snippets(hit),
    error ? h("div", { class: "row-error", role: "alert", dataset: { testid: "row-error" } },
      h("span", { class: "icon", "aria-hidden": "true" }, "!"), error) : null),
  h("td", { class: "when" }, fmtDate(hit.placed_at)),
  h("td", { class: "num" }, fmtInt(hit.item_count)),
  h("td", { class: "num money" }, fmtMoney(hit.total)),
  h("td", {},
    h("span", { class: `pill ${status}${pending ? " pending" : ""}`,
      dataset: { testid: "row-status" } }, status)),
  h("td", { class: "actions" }, command("cancel", "Cancel"), command("ship", "Ship")));
}

function render() {
  renderFacets();
  els.results.replaceChildren(...state.hits.map(renderRow));
  els.empty.hidden = state.hits.length > 0;
  const shownCount = state.hits.length;
  els.total.textContent = state.total
    ? `${fmtInt(shownCount)} of ${fmtInt(state.total)} orders` : "";
  els.more.hidden = !state.cursor;
}

function updateRow(id) {
  const hit = state.hits.find((x) => x.order_id === id);
  const row = els.results.querySelector(`tr[data-order-id="${CSS.escape(id)}"]`);
  if (hit && row) row.replaceWith(renderRow(hit));
}

/* ---------- commands ---------- */

async function runCommand(id, kind) {
  const hit = state.hits.find((x) => x.order_id === id);
  if (!hit || state.pending.has(id)) return;
  const spec = COMMANDS[kind];
  state.errors.delete(id);
  state.pending.set(id, spec.optimistic); // show the outcome at once
  updateRow(id);
  try {
    const { data } = await post(`/orders/${encodeURIComponent(id)}/${kind}`, spec.body());
    state.pending.delete(id);
    for (const row of state.hits) {
      if (row.order_id === id) row.status = data.status;
    }
    updateRow(id);
    toast(`Order #${id.slice(0, 8)} ${data.status}`);
    runSearch({ minPosition: data.position }); // the list catches up with the write
  } catch (err) {
    state.pending.delete(id); // roll back to the status the read side showed
    state.errors.set(id, err.message || "the command failed");
    updateRow(id);
  }
}

/* ---------- suggestions ---------- */

let suggestSeq = 0;
let active = -1;

function openSuggestions(items, prefix) {
  active = -1;
  if (!items.length) {
    closeSuggestions();
    return;
  }
  els.suggestions.replaceChildren(...items.map((s, i) => h("li", {
    role: "option", id: `suggestion-${i}`, class: "suggestion",
    dataset: { testid: "suggestion", kind: s.kind, text: s.text },
    onmousedown: (event) => {
      event.preventDefault(); // keep focus in the input
      pick(s.text);
    },
  }, h("span", { class: `kind ${s.kind}` }, s.kind), h("span", { class: "text" },
    withPrefix(s.text, prefix)))));
  els.suggestions.hidden = false;
  els.input.setAttribute("aria-expanded", "true");
}

function closeSuggestions() {
  els.suggestions.hidden = true;
  els.input.setAttribute("aria-expanded", "false");
  els.input.removeAttribute("aria-activedescendant");
  active = -1;
}

function moveActive(step) {
  const items = [...els.suggestions.children];
  if (els.suggestions.hidden || !items.length) return;
  active = (active + step + items.length) % items.length;
  items.forEach((item, i) => item.setAttribute("aria-selected", String(i === active)));
  els.input.setAttribute("aria-activedescendant", items[active].id);
}

function pick(text) {
  els.input.value = text;
  closeSuggestions();
  state.q = text;
  runSearch();
}

async function suggest(prefix) {
  const seq = ++suggestSeq;
  if (!prefix) {
    closeSuggestions();
    return;
  }
  try {
    const { data } = await get(`/search/suggest${query({ prefix })}`);
    if (seq === suggestSeq && document.activeElement === els.input) {
      openSuggestions(data.suggestions, prefix);
    }
  } catch {
    if (seq === suggestSeq) closeSuggestions();
  }
}

/* ---------- wiring ---------- */

export function startSearch() {
  for (const [key, id] of Object.entries({
    input: "q", suggestions: "suggestions", results: "results", facets: "facets",
    empty: "empty", error: "search-error", more: "more", total: "result-total", sort: "sort",
  })) els[key] = document.getElementById(id);

  const suggestSoon = debounce(suggest, 120);
  const searchSoon = debounce(() => runSearch(), 220);
  els.input.addEventListener("input", () => {
    const value = els.input.value.trim();
    suggestSoon(value);
    if (value !== state.q) {
      state.q = value;
      if (value && state.sort === "-placed_at" && !els.sort.dataset.touched) {
        state.sort = "relevance";
        els.sort.value = "relevance";
      } else if (!value && state.sort === "relevance" && !els.sort.dataset.touched) {
        state.sort = "-placed_at";
        els.sort.value = "-placed_at";
      }
      searchSoon();
    }
  });
  els.input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { event.preventDefault(); moveActive(1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); moveActive(-1); }
    else if (event.key === "Escape") closeSuggestions();
    else if (event.key === "Enter") {
      event.preventDefault();
      const item = els.suggestions.children[active];
      if (!els.suggestions.hidden && item) pick(item.dataset.text);
      else { closeSuggestions(); state.q = els.input.value.trim(); runSearch(); }
    }
  });
  els.input.addEventListener("blur", () => setTimeout(closeSuggestions, 100));
  els.input.addEventListener("focus", () => {
    if (els.input.value.trim()) suggest(els.input.value.trim());
  });
  els.sort.addEventListener("change", () => {
    els.sort.dataset.touched = "true";
    state.sort = els.sort.value;
    runSearch();
  });
  els.more.addEventListener("click", () => runSearch({ append: true }));
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && document.activeElement !== els.input) {
      event.preventDefault();
      els.input.focus();
    }
  });
  runSearch();
}
