// Small form pieces shared by the newer screens: labelled fields, the staff and department pickers,
// result lines, and downloading a file the API answers with (signed zips, xlsx, CSV).
import { get, qs } from "./api.js";
import { clear, h, plain, uid } from "./dom.js";
import { fullTime } from "./format.js";
import { t } from "./i18n.js";
import { announce } from "./notify.js";

/** A labelled field: <div.field><label for>…</label>control<p.hint/></div>. */
export function field(control, labelKey, { hint, vars } = {}) {
  if (!control.id) control.id = uid("f");
  const hintId = hint ? `${control.id}-hint` : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" }, h("label", { for: control.id, text: t(labelKey, vars) }), control,
    hint ? h("p", { class: "hint", id: hintId, text: t(hint) }) : null);
}

/** A checkbox with its label after it. */
export function checkbox(labelKey, { checked = false, id } = {}) {
  const input = h("input", { type: "checkbox", id: id || uid("cb"), checked });
  return { input, el: h("span", { class: "check" }, input, h("label", { for: input.id, text: t(labelKey) })) };
}

/** Show the outcome of an action in a status line (and say it to screen readers). */
export function result(el, text, ok = true) {
  el.textContent = text;
  el.className = ok ? "notice" : "form-error";
  el.setAttribute("role", ok ? "status" : "alert");
  announce(text, { assertive: !ok });
}

/** The file name from a Content-Disposition header (RFC 5987 filename* first). */
function dispositionName(header, fallback) {
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header || "");
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      // fall through
    }
  }
  const simple = /filename="([^"]+)"/i.exec(header || "");
  return simple ? simple[1] : fallback;
}

/** Fetch a file from the API (GET, or POST with JSON and the CSRF token) and save it. */
export async function download(path, { method = "GET", json, csrf, fallbackName = "download" } = {}) {
  const headers = { Accept: "application/zip, application/octet-stream, */*" };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const res = await fetch(path, { method, headers, credentials: "same-origin", cache: "no-store",
    body: json === undefined ? undefined : JSON.stringify(json) });
  if (!res.ok) {
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    const err = new Error(data?.error?.code || `http_${res.status}`);
    err.userMessage = data?.error?.message || t("error.generic");
    throw err;
  }
  const blob = await res.blob();
  const name = dispositionName(res.headers.get("Content-Disposition"), fallbackName);
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name, class: "visually-hidden", text: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return name;
}

let departmentsPromise = null;
export function departments() {
  if (!departmentsPromise) {
    departmentsPromise = get("/api/departments").then((d) => d.departments.filter((x) => x.active !== false))
      .catch((err) => {
        departmentsPromise = null;
        throw err;
      });
  }
  return departmentsPromise;
}

/** Checkboxes for departments (部・課・係), in a scrollable group. value() → [ids]. */
export async function departmentPicker(legendKey, { only } = {}) {
  const list = (await departments()).filter((d) => !only || only.has(d.id));
  const boxes = list.map((d) => {
    const id = uid("dept");
    const input = h("input", { type: "checkbox", id, value: String(d.id) });
    return h("li", { class: `check dept-${d.kind || "x"}` }, input, h("label", { for: id, text: d.name }));
  });
  const el = h("fieldset", { class: "field picker-box" }, h("legend", { text: t(legendKey) }),
    list.length ? h("ul", { class: "check-list" }, boxes) : h("p", { class: "empty", text: t("picker.noDepartments") }));
  return {
    el,
    value: () => [...el.querySelectorAll("input:checked")].map((i) => Number(i.value)),
  };
}

/**
 * Choose staff: search the directory (or a given list, e.g. a room's members), add to a chosen list.
 * opts: {labelKey, source: async (q) => cards, exclude: Set<id>}. value() → [ids].
 */
export function staffPicker({ labelKey = "picker.staff", source, exclude = new Set(), initial = [] } = {}) {
  const chosen = new Map(initial.map((c) => [c.id, c]));
  const inputId = uid("pick");
  const input = h("input", { id: inputId, type: "search", class: "input", autocomplete: "off", maxlength: "100",
    "aria-describedby": `${inputId}-hint` });
  const results = h("ul", { class: "pick-results", "aria-label": t("picker.results") });
  const chosenList = h("ul", { class: "pick-chosen", "aria-label": t("picker.chosen") });
  const status = h("p", { class: "hint", role: "status" });
  const find = source || (async (q) => (await get(`/api/staff${qs({ q, limit: 20 })}`)).staff);
  const drawChosen = () => {
    clear(chosenList);
    for (const c of chosen.values()) {
      chosenList.append(h("li", { class: "pick-item" },
        h("span", { class: "person-name", text: c.display_name }),
        h("span", { class: "person-detail", text: plain(c.department || "") }),
        h("button", { type: "button", class: "button link small", text: t("picker.remove"),
          "aria-label": t("picker.removeLabel", { name: plain(c.display_name) }), on: { click: () => {
            chosen.delete(c.id);
            drawChosen();
            announce(t("picker.removed", { name: plain(c.display_name) }));
            input.focus();
          } } })));
    }
    if (!chosen.size) chosenList.append(h("li", { class: "empty", text: t("picker.noneChosen") }));
  };
  let timer = null;
  const search = async () => {
    const q = input.value.trim();
    clear(results);
    if (!q) {
      status.textContent = "";
      return;
    }
    let found = [];
    try {
      found = (await find(q)).filter((c) => !exclude.has(c.id) && c.status !== "retired");
    } catch (err) {
      status.textContent = err.userMessage || t("error.generic");
      return;
    }
    if (input.value.trim() !== q) return;
    for (const c of found.slice(0, 20)) {
      const on = chosen.has(c.id);
      results.append(h("li", { class: "pick-item" },
        h("span", { class: "person-name", text: c.display_name }),
        h("span", { class: "person-detail", text: [c.department, c.rank].filter(Boolean).map(plain).join(" · ") }),
        h("button", { type: "button", class: "button secondary small", disabled: on,
          text: on ? t("picker.added") : t("picker.add"),
          "aria-label": t("picker.addLabel", { name: plain(c.display_name) }), on: { click: (ev) => {
            chosen.set(c.id, c);
            ev.currentTarget.disabled = true;
            ev.currentTarget.textContent = t("picker.added");
            drawChosen();
            announce(t("picker.addedName", { name: plain(c.display_name) }));
          } } })));
    }
    status.textContent = t("picker.count", { count: found.length });
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 200);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      clearTimeout(timer);
      search();
    }
  });
  drawChosen();
  const el = h("div", { class: "picker" },
    h("div", { class: "field" }, h("label", { for: inputId, text: t(labelKey) }), input,
      h("p", { class: "hint", id: `${inputId}-hint`, text: t("picker.hint") })),
    status, results,
    h("h3", { class: "pick-heading", text: t("picker.chosenHeading") }), chosenList);
  return { el, value: () => [...chosen.keys()], clear: () => { chosen.clear(); drawChosen(); } };
}

/** A small table: caption, column keys, rows of cells (strings or nodes). */
export function table(caption, columns, rows, { className = "table" } = {}) {
  return h("div", { class: "table-wrap" }, h("table", { class: className },
    h("caption", { text: caption }),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: t(c) })))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => (i === 0
      ? h("th", { scope: "row" }, c) : h("td", {}, c))))))));
}

/** Copy text to the clipboard: the Clipboard API, or selecting the field and the older copy command. */
export async function copyText(input) {
  try {
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch {
    input.focus();
    input.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
}

/**
 * A link shown once (guest invitations, phone enrolment): a read-only field, a copy button and the
 * expiry. The server keeps only a hash of the token, so this is the only time anyone sees it.
 * opts: {titleKey, vars, url, expiresAt (ISO), noteKey}. Focus moves to the field after mounting.
 */
export function oneTimeLink({ titleKey, vars = {}, url, expiresAt, noteKey }) {
  const id = uid("link");
  const input = h("input", { id, class: "input link-input", readonly: "readonly", value: url,
    "aria-describedby": `${id}-note`, spellcheck: "false", autocomplete: "off" });
  input.value = url;
  input.addEventListener("focus", () => input.select());
  const status = h("p", { class: "hint", role: "status" });
  const copy = h("button", { type: "button", class: "button primary small", text: t("link.copy"), on: { click: async () => {
    const done = await copyText(input);
    status.textContent = done ? t("link.copied") : t("link.copyFailed");
    status.className = done ? "notice" : "form-error";
    announce(status.textContent, { assertive: !done });
  } } });
  const box = h("section", { class: "card link-box", "aria-labelledby": `${id}-h` },
    h("h3", { id: `${id}-h`, text: t(titleKey, vars) }),
    h("p", { class: "link-note", id: `${id}-note`, text: t(noteKey) }),
    h("div", { class: "field" }, h("label", { for: id, text: t("link.label") }),
      h("div", { class: "link-row" }, input, copy)),
    status,
    expiresAt ? h("p", { class: "hint", text: t("link.expires", { time: fullTime(expiresAt) }) }) : null);
  box.input = input;
  return box;
}
