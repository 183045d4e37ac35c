// DOM helpers. Every string goes in through textContent or a property; never innerHTML.
// (Strings from the server — names, bodies, file names — are untrusted.)

const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/g;

/** Text safe to show: bidi overrides removed (defence in depth; the server strips them too). */
export function plain(value) {
  return String(value ?? "").replace(BIDI_CONTROLS, "");
}

/**
 * Create an element. attrs: {class, text, on: {click: fn}, dataset: {}, and any attribute/property}.
 * Children: nodes, strings (become text nodes), null/false (skipped) or arrays of those.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = plain(value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "hidden" || key === "disabled" || key === "checked" || key === "selected"
             || key === "required" || key === "multiple" || key === "open") el[key] = Boolean(value);
    else if (key === "value") el.value = value;
    else if (key === "style") throw new Error("no inline styles (CSP style-src 'self')");
    else if (key.startsWith("on")) throw new Error("use the on: {} map for listeners");
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(plain(child)));
  }
  return parent;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") el.textContent = plain(value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) if (child) el.append(child);
  return el;
}

let idCounter = 0;
export function uid(prefix = "id") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A visually hidden span for screen readers. */
export function srOnly(text) {
  return h("span", { class: "visually-hidden", text });
}
