// Small DOM helpers: an element builder, safe highlight rendering, number and date formats.

/** `h("td", {class: "num", dataset: {x: 1}}, "text", child)`: children are text or nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const MARK = /(<mark>|<\/mark>)/;

/**
 * A highlight fragment as DOM: only `<mark>` and `</mark>` become markup; every other
 * character, including any other tag, is shown as text.
 */
export function highlighted(html) {
  const fragment = document.createDocumentFragment();
  let mark = null;
  for (const part of String(html).split(MARK)) {
    if (part === "<mark>") {
      mark = document.createElement("mark");
      fragment.append(mark);
    } else if (part === "</mark>") {
      mark = null;
    } else if (part) {
      (mark ?? fragment).append(document.createTextNode(part));
    }
  }
  return fragment;
}

/** Text with its first case-insensitive match of `prefix` in <b>. */
export function withPrefix(text, prefix) {
  const at = prefix ? text.toLowerCase().indexOf(prefix.toLowerCase()) : -1;
  if (at < 0) return [text];
  return [text.slice(0, at), h("b", {}, text.slice(at, at + prefix.length)),
    text.slice(at + prefix.length)];
}

const integer = new Intl.NumberFormat("en-US");
const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compactMoney = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const dateTime = new Intl.DateTimeFormat("en-GB", {
  day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
});

export const fmtInt = (n) => integer.format(Number(n) || 0);
export const fmtMoney = (s) => money.format(Number(s) || 0);
export const fmtCompactMoney = (s) => compactMoney.format(Number(s) || 0);

export function fmtDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : dateTime.format(date);
}

/** Call `fn` once input has been quiet for `ms`. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

let toastTimer = 0;

/** A short message at the bottom of the screen. */
export function toast(message, kind = "ok") {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 3000);
}
