// Message catalogues: /static/i18n/<lang>.json. Japanese is the default; English is available.
// Every user-visible string comes from a catalogue via t(); scripts hold keys only.

export const LANGS = ["ja", "en"];
let lang = "ja";
let catalogue = {};
let fallback = {};
const listeners = new Set();

async function fetchCatalogue(code) {
  const res = await fetch(`/static/i18n/${code}.json`, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`catalogue ${code}: ${res.status}`);
  return res.json();
}

export async function setLang(code) {
  if (!LANGS.includes(code)) code = "ja";
  if (code !== "ja" && Object.keys(fallback).length === 0) fallback = await fetchCatalogue("ja");
  catalogue = await fetchCatalogue(code);
  if (code === "ja") fallback = catalogue;
  lang = code;
  document.documentElement.lang = code;
  for (const fn of listeners) fn(code);
}

export function getLang() {
  return lang;
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/** The string for key with {name} placeholders filled in; the key itself if missing (tests catch that). */
export function t(key, vars = {}) {
  const template = catalogue[key] ?? fallback[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** The locale for Intl formatting. */
export function locale() {
  return lang === "ja" ? "ja-JP" : "en-GB";
}
