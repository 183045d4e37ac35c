// Formatting: message bodies (plain text + http(s) links), JST times, sizes, search highlights.
import { h, plain } from "./dom.js";
import { locale, t } from "./i18n.js";

// A URL runs until whitespace, an angle bracket or quote, or a full-width character (Japanese text
// often follows a URL with no space). Trailing ASCII punctuation is not part of the link.
const URL_RE = /\bhttps?:\/\/[^\s<>"'\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]+/gi;
const TRAILING = /[.,;:!?)\]}]+$/;

/** A safe link element for an http(s) URL, or null for anything else (javascript:, data:, …). */
export function safeLink(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  return h("a", { href: url.href, rel: "noopener noreferrer", target: "_blank", text });
}

/** Message body → nodes: text stays text (line breaks kept by CSS pre-wrap), http(s) URLs become links. */
export function renderBody(body) {
  const text = plain(body);
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let candidate = match[0];
    const trail = candidate.match(TRAILING);
    if (trail) candidate = candidate.slice(0, -trail[0].length);
    const link = candidate ? safeLink(candidate) : null;
    if (!link) continue;
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    nodes.push(link);
    last = match.index + candidate.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

/** Text with every case-insensitive occurrence of query wrapped in <mark>. */
export function highlight(text, query) {
  const source = plain(text);
  const q = plain(query).trim();
  if (!q) return [document.createTextNode(source)];
  const lower = source.toLowerCase();
  const needle = q.toLowerCase();
  const nodes = [];
  let pos = 0;
  for (;;) {
    const at = lower.indexOf(needle, pos);
    if (at < 0) break;
    if (at > pos) nodes.push(document.createTextNode(source.slice(pos, at)));
    nodes.push(h("mark", { text: source.slice(at, at + q.length) }));
    pos = at + q.length;
  }
  if (pos < source.length) nodes.push(document.createTextNode(source.slice(pos)));
  return nodes;
}

/** About `radius` characters either side of the first hit, with ellipses. */
export function snippet(text, query, radius = 60) {
  const source = plain(text).replace(/\s+/g, " ");
  const at = source.toLowerCase().indexOf(plain(query).trim().toLowerCase());
  if (at < 0 || source.length <= radius * 2) return source.slice(0, radius * 2);
  const start = Math.max(0, at - radius);
  const end = Math.min(source.length, at + query.length + radius);
  return (start > 0 ? "…" : "") + source.slice(start, end) + (end < source.length ? "…" : "");
}

const TZ = "Asia/Tokyo";

function parts(date, options) {
  return new Intl.DateTimeFormat(locale(), { timeZone: TZ, ...options }).format(date);
}

/** Short time for the timeline: HH:MM today, otherwise M/D HH:MM (JST). */
export function shortTime(iso) {
  const date = new Date(iso);
  const day = (d) => parts(d, { year: "numeric", month: "2-digit", day: "2-digit" });
  if (day(date) === day(new Date())) return parts(date, { hour: "2-digit", minute: "2-digit" });
  return parts(date, { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** Full JST time to the second, e.g. 2026/04/01 09:00:00 JST. */
export function fullTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return `${parts(date, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hour12: false })} JST`;
}

export function timeElement(iso) {
  return h("time", { datetime: iso, title: fullTime(iso), text: shortTime(iso) });
}

export function fileSize(bytes) {
  if (bytes < 1024) return t("unit.bytes", { n: bytes });
  if (bytes < 1024 * 1024) return t("unit.kib", { n: (bytes / 1024).toFixed(1) });
  return t("unit.mib", { n: (bytes / 1024 / 1024).toFixed(1) });
}

/** A JST calendar date (YYYY-MM-DD) to the UTC ISO instant of its midnight, for API filters. */
export function jstDateToUtcIso(dateText, addDays = 0) {
  const [y, m, d] = dateText.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + addDays, -9, 0, 0)).toISOString();
}

/** Today in JST as YYYY-MM-DD. */
export function jstToday() {
  const date = new Date(Date.now() + 9 * 3600 * 1000);
  return date.toISOString().slice(0, 10);
}
