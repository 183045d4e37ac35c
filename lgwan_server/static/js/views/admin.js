// Admin screens: 職員 (停止・退職・再開, TOTP reset, sessions), CSV 取込, 人事異動, 認証・接続 (IP allowlist,
// MFA), ルームの公開範囲, スマートフォン・端末 and 中継サーバー連携 (phones.js), 操作ログ (filters, chain
// verification) and 利用状況.
import { api, del, get, patch, post, put, qs } from "../api.js";
import { confirmDialog, openDialog } from "../dialog.js";
import { clear, h, plain } from "../dom.js";
import { fullTime, jstDateToUtcIso, jstToday } from "../format.js";
import { t } from "../i18n.js";
import { announce } from "../notify.js";
import { isAdmin, state } from "../state.js";
import { roomTitle } from "./sidebar.js";
import { download, field as labelled } from "../widgets.js";
import { renderBridge, renderPhones } from "./phones.js";
import { renderUsage } from "./usage.js";

const SECTIONS = ["staff", "import", "transfers", "security", "rooms", "phones", "records", "audit", "usage"];
const SERVER_SECTIONS = ["bridge"];   // the relay link is the server's, not one organisation's
const AUDITOR_SECTIONS = ["audit"];

async function orgLookups() {
  const [deps, ranks] = await Promise.all([get("/api/departments"), get("/api/ranks")]);
  const depName = new Map(deps.departments.map((d) => [d.id, d.name]));
  const rankName = new Map(ranks.ranks.map((r) => [r.id, r.name]));
  return { departments: deps.departments, ranks: ranks.ranks, depName, rankName };
}

async function allStaff(status) {
  const out = [];
  for (let offset = 0; offset < 100000; offset += 200) {
    const page = await get(`/api/admin/staff${qs({ status, limit: 200, offset })}`);
    out.push(...page.staff);
    if (page.staff.length < 200) break;
  }
  return out;
}

function result(el, text, ok = true) {
  el.textContent = text;
  el.className = ok ? "notice" : "form-error";
  announce(text, { assertive: !ok });
}

export async function renderAdmin(main, section) {
  const allowed = !isAdmin() ? AUDITOR_SECTIONS
    : state.me.role === "server_admin" ? [...SECTIONS, ...SERVER_SECTIONS] : SECTIONS;
  if (!allowed.includes(section)) section = allowed[0];
  const body = h("div", { class: "admin-body" });
  clear(main).append(h("div", { class: "admin" },
    h("header", { class: "room-header" }, h("h1", { id: "admin-title", class: "room-title", text: t("admin.title") })),
    h("nav", { class: "admin-nav", "aria-label": t("admin.sections") },
      h("ul", {}, allowed.map((s) => h("li", {}, h("a", { href: `#/admin/${s}`, class: "admin-tab",
        "aria-current": s === section ? "page" : null, text: t(`admin.${s}.title`) }))))),
    body));
  const heading = h("h2", { text: t(`admin.${section}.title`), tabindex: "-1" });
  body.append(heading);
  try {
    await { staff: staffSection, import: importSection, transfers: transferSection, security: securitySection,
      rooms: roomsSection, phones: (el) => renderPhones(el, { allStaff }), bridge: (el) => renderBridge(el),
      records: recordsSection, audit: auditSection, usage: (el) => renderUsage(el) }[section](body);
  } catch (err) {
    body.append(h("p", { class: "form-error", role: "alert", text: err.userMessage || String(err) }));
  }
}

// --- 職員 ---------------------------------------------------------------------------------------

async function staffSection(body) {
  const lookups = await orgLookups();
  const status = h("select", { id: "staff-status", class: "input" },
    ["", "active", "suspended", "retired"].map((s) => h("option", { value: s, text: s ? t(`status.${s}`) : t("admin.all") })));
  const filter = h("input", { id: "staff-filter", type: "search", class: "input", autocomplete: "off" });
  const message = h("p", { class: "notice", role: "status" });
  const tableBox = h("div", { class: "table-wrap" });
  body.append(h("p", { class: "hint", text: t("admin.staff.help") }),
    h("div", { class: "filters" },
      h("div", { class: "field" }, h("label", { for: "staff-filter", text: t("admin.staff.filter") }), filter),
      h("div", { class: "field" }, h("label", { for: "staff-status", text: t("admin.staff.status") }), status)),
    message, tableBox, addStaffForm(lookups, () => load()));
  let staff = [];
  const draw = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = staff.filter((s) => !q || [s.display_name, s.kana, s.login, s.employee_no || ""]
      .some((v) => v.toLowerCase().includes(q))).slice(0, 300);
    clear(tableBox).append(h("table", { class: "table compact" },
      h("caption", { text: t("admin.staff.caption", { shown: rows.length, total: staff.length }) }),
      h("thead", {}, h("tr", {}, ["employeeNo", "name", "login", "department", "rank", "role", "state", "totp", "actions"]
        .map((c) => h("th", { scope: "col", text: t(`admin.staff.col.${c}`) })))),
      h("tbody", {}, rows.map((s) => h("tr", { dataset: { login: s.login } },
        h("td", { text: s.employee_no || "" }),
        h("th", { scope: "row", text: s.display_name }),
        h("td", { text: s.login }),
        h("td", { text: lookups.depName.get(s.department_id) || "" }),
        h("td", { text: lookups.rankName.get(s.rank_id) || "" }),
        h("td", { text: t(`role.${s.role}`) }),
        h("td", {}, h("span", { class: `status status-${s.status}`, text: t(`status.${s.status}`) })),
        h("td", { text: s.totp_enabled ? t("admin.staff.totpOn") : t("admin.staff.totpOff") }),
        h("td", {}, h("div", { class: "row-actions" }, staffActions(s, message, load))))))));
  };
  const load = async () => {
    staff = await allStaff(status.value || undefined);
    draw();
  };
  filter.addEventListener("input", draw);
  status.addEventListener("change", load);
  await load();
}

function staffActions(s, message, reload) {
  const name = plain(s.display_name);
  const act = (key, handler, danger = false) => h("button", { type: "button",
    class: `button small ${danger ? "danger-outline" : "secondary"}`, text: t(`admin.staff.${key}`),
    "aria-label": t(`admin.staff.${key}Label`, { name }), on: { click: handler } });
  const setStatus = (target, danger) => async () => {
    const reason = await confirmDialog({ title: t(`admin.staff.${target}Confirm`, { name }),
      message: t(`admin.staff.${target}Explain`), confirmLabel: t(`admin.staff.${target}`), askReason: true, danger });
    if (reason === null) return;
    try {
      await put(`/api/admin/staff/${s.id}/status`, { status: target, reason });
      result(message, t(`admin.staff.${target}Done`, { name }));
      await reload();
    } catch (err) {
      result(message, err.userMessage, false);
    }
  };
  const buttons = [act("sessions", () => sessionsDialog(s, message))];
  if (s.id === state.me.staff.id) return buttons;   // the server refuses to disable oneself anyway
  if (s.status === "active") {
    buttons.push(act("suspended", setStatus("suspended", true), true));
    buttons.push(act("retired", setStatus("retired", true), true));
    if (s.totp_enabled) {
      buttons.push(act("totpReset", async () => {
        const ok = await confirmDialog({ title: t("admin.staff.totpResetConfirm", { name }),
          message: t("admin.staff.totpResetExplain"), confirmLabel: t("admin.staff.totpReset") });
        if (!ok) return;
        try {
          await post(`/api/admin/staff/${s.id}/totp-reset`, {});
          result(message, t("admin.staff.totpResetDone", { name }));
          await reload();
        } catch (err) {
          result(message, err.userMessage, false);
        }
      }));
    }
  } else if (s.status === "suspended") {
    buttons.push(act("active", setStatus("active", false)));
    buttons.push(act("retired", setStatus("retired", true), true));
  }
  return buttons;
}

/** 職員を追加: login, name, kana, 所属, 職層, 役職, 権限, initial password. */
function addStaffForm(lookups, reload) {
  const input = (id, attrs = {}) => h("input", { id, class: "input", ...attrs });
  const login = input("ns-login", { maxlength: "64", required: true, autocomplete: "off", pattern: "[A-Za-z0-9._-]{2,64}" });
  const name = input("ns-name", { maxlength: "100", required: true });
  const kana = input("ns-kana", { maxlength: "100" });
  const employeeNo = input("ns-employee", { maxlength: "32" });
  const dept = h("select", { id: "ns-dept", class: "input" }, h("option", { value: "", text: t("admin.newStaff.none") }),
    lookups.departments.filter((d) => d.active).map((d) => h("option", { value: String(d.id), text: d.name })));
  const rank = h("select", { id: "ns-rank", class: "input" }, h("option", { value: "", text: t("admin.newStaff.none") }),
    lookups.ranks.map((r) => h("option", { value: String(r.id), text: r.name })));
  const title = input("ns-title", { maxlength: "100" });
  const role = h("select", { id: "ns-role", class: "input" },
    ["staff", "org_admin", "auditor", "records_officer", "safety_manager"].map((r) => h("option", { value: r, text: t(`role.${r}`) })));
  const password = input("ns-password", { type: "password", maxlength: "256", autocomplete: "new-password" });
  const out = h("p", { role: "status" });
  const form = h("form", { class: "form grid-form", on: { submit: async (ev) => {
    ev.preventDefault();
    if (!login.value.trim() || !name.value.trim()) {
      result(out, t("admin.newStaff.missing"), false);
      return;
    }
    const payload = { login: login.value.trim(), display_name: name.value.trim(), kana: kana.value.trim(), role: role.value };
    if (employeeNo.value.trim()) payload.employee_no = employeeNo.value.trim();
    if (dept.value) payload.department_id = Number(dept.value);
    if (rank.value) payload.rank_id = Number(rank.value);
    if (title.value.trim()) payload.title = title.value.trim();
    if (password.value) payload.password = password.value;
    try {
      await post("/api/admin/staff", payload);
      result(out, t("admin.newStaff.done", { name: plain(payload.display_name) }));
      form.reset();
      await reload();
    } catch (err) {
      result(out, err.userMessage, false);
    }
  } } },
  labelled(login, "admin.newStaff.login", { hint: "admin.newStaff.loginHint" }), labelled(name, "admin.newStaff.name"),
  labelled(kana, "admin.newStaff.kana"), labelled(employeeNo, "admin.newStaff.employeeNo"),
  labelled(dept, "admin.newStaff.department"), labelled(rank, "admin.newStaff.rank"), labelled(title, "admin.newStaff.title"),
  labelled(role, "admin.newStaff.role"), labelled(password, "admin.newStaff.password", { hint: "admin.newStaff.passwordHint" }),
  h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", text: t("admin.newStaff.submit") })));
  return h("details", { class: "card add-staff" }, h("summary", { text: t("admin.newStaff.open") }), form, out);
}

/** A person's sessions (when, from where, which browser) and 「セッションを終了」 for all of them. */
async function sessionsDialog(s, message) {
  const name = plain(s.display_name);
  let data;
  try {
    data = await get(`/api/admin/staff/${s.id}/sessions`);
  } catch (err) {
    result(message, err.userMessage, false);
    return;
  }
  const out = h("p", { role: "status" });
  const end = h("button", { type: "button", class: "button danger", text: t("admin.sessions.end"), disabled: !data.sessions.length });
  const { close, body } = openDialog({
    title: t("admin.sessions.title", { name }),
    className: "wide-dialog sessions-dialog",
    content: [data.sessions.length ? h("div", { class: "table-wrap" }, h("table", { class: "table" },
      h("caption", { text: t("admin.sessions.caption", { count: data.sessions.length }) }),
      h("thead", {}, h("tr", {}, ["created", "lastSeen", "ip", "agent"].map((c) => h("th", { scope: "col", text: t(`admin.sessions.col.${c}`) })))),
      h("tbody", {}, data.sessions.map((x) => h("tr", {}, h("td", { text: fullTime(x.created_at) }), h("td", { text: fullTime(x.last_seen_at) }),
        h("td", { text: x.source_ip }), h("td", { class: "detail", text: x.user_agent })))))) : h("p", { class: "empty", text: t("admin.sessions.none") }),
    out],
    actions: s.id === state.me.staff.id ? [] : [end],
  });
  // the table may scroll sideways (long browser names): let keyboards scroll it too
  Object.assign(body, { tabIndex: 0 });
  body.setAttribute("role", "region");
  body.setAttribute("aria-label", t("admin.sessions.title", { name }));
  end.addEventListener("click", async () => {
    try {
      const res = await del(`/api/admin/staff/${s.id}/sessions`);
      close();
      result(message, t("admin.staff.endSessionsDone", { name, count: res.ended }));
    } catch (err) {
      result(out, err.userMessage, false);
    }
  });
}

// --- 公文書管理: 保存期間区分 and the signing key ------------------------------------------------------

async function recordsSection(body) {
  const [data, key] = await Promise.all([get("/api/records/classes"), get("/api/records/key")]);
  const out = h("p", { role: "status" });
  const tbody = h("tbody", {});
  const row = (c = { code: "", label: "", years: 1, active: true }) => {
    const n = tbody.childElementCount + 1;
    const code = h("input", { class: "input input-small", value: c.code, maxlength: "16", "aria-label": t("admin.records.codeFor", { n }) });
    const label = h("input", { class: "input input-small", value: c.label, maxlength: "50", "aria-label": t("admin.records.labelFor", { n }) });
    const years = h("input", { class: "input input-small", type: "number", min: "0", max: "100", value: String(c.years),
      "aria-label": t("admin.records.yearsFor", { n }) });
    const active = h("input", { type: "checkbox", checked: c.active, "aria-label": t("admin.records.activeFor", { n }) });
    code.value = c.code;
    label.value = c.label;
    tbody.append(h("tr", { class: "class-row" }, h("td", {}, code), h("td", {}, label), h("td", {}, years), h("td", {}, active)));
  };
  data.classes.forEach((c) => row(c));
  body.append(h("p", { class: "hint", text: t("admin.records.help") }),
    h("section", { class: "card", "aria-labelledby": "rec-key-h" }, h("h3", { id: "rec-key-h", text: t("admin.records.key") }),
      h("p", { class: "hint", text: t("admin.records.keyHelp") }),
      h("p", {}, h("code", { id: "records-fingerprint", class: "fingerprint", text: key.fingerprint }))),
    h("form", { class: "form card", "aria-labelledby": "rec-classes-h", on: { submit: async (ev) => {
      ev.preventDefault();
      const classes = [...tbody.querySelectorAll("tr")].map((tr) => {
        const [code, label, years, active] = tr.querySelectorAll("input");
        return { code: code.value.trim(), label: label.value.trim(), years: Number(years.value), active: active.checked };
      }).filter((c) => c.code || c.label);
      try {
        await put("/api/records/classes", { classes });
        result(out, t("admin.records.saved"));
      } catch (err) {
        result(out, err.userMessage, false);
      }
    } } },
    h("h3", { id: "rec-classes-h", text: t("admin.records.classes") }),
    h("div", { class: "table-wrap" }, h("table", { class: "table classes-table" }, h("caption", { text: t("admin.records.caption") }),
      h("thead", {}, h("tr", {}, ["code", "label", "years", "active"].map((c) => h("th", { scope: "col", text: t(`admin.records.col.${c}`) })))),
      tbody)),
    h("div", { class: "form-actions" },
      h("button", { type: "button", class: "button secondary", text: t("admin.records.addRow"), on: { click: () => {
        row();
        tbody.lastElementChild.querySelector("input").focus();
      } } }),
      h("button", { type: "submit", class: "button primary", text: t("common.save") })), out));
}

function countLabel(key) {
  const label = t(`admin.import.count.${key}`);
  return label === `admin.import.count.${key}` ? key : label;
}

// --- CSV 取込 -----------------------------------------------------------------------------------

function importSection(body) {
  for (const kind of ["departments", "staff"]) {
    const inputId = `import-${kind}`;
    const file = h("input", { id: inputId, type: "file", accept: ".csv,text/csv", class: "input" });
    const out = h("div", { class: "import-result", role: "status" });
    const submit = h("button", { type: "submit", class: "button primary", text: t("admin.import.submit") });
    body.append(h("section", { class: "card", "aria-labelledby": `${inputId}-h` },
      h("h3", { id: `${inputId}-h`, text: t(`admin.import.${kind}`) }),
      h("p", { class: "hint", text: t(`admin.import.${kind}Help`) }),
      h("form", { class: "form-inline", on: { submit: async (ev) => {
        ev.preventDefault();
        clear(out);
        const f = file.files[0];
        if (!f) {
          out.append(h("p", { class: "form-error", text: t("admin.import.noFile") }));
          return;
        }
        submit.disabled = true;
        try {
          const res = await api("POST", `/api/admin/import/${kind}`, f, { contentType: "text/csv" });
          out.append(h("p", { class: "notice", text: t("admin.import.done") }),
            h("dl", { class: "counts" }, Object.entries(res).filter(([, v]) => typeof v !== "object")
              .map(([k, v]) => [h("dt", { text: countLabel(k) }), h("dd", { text: String(v) })])));
          announce(t("admin.import.done"));
        } catch (err) {
          const errors = err.detail?.errors;
          out.append(h("p", { class: "form-error", role: "alert", text: err.userMessage }),
            Array.isArray(errors) ? h("ul", { class: "csv-errors" }, errors.slice(0, 50).map((e) => h("li", {
              text: t("admin.import.rowError", { line: e.line ?? "?", field: e.field ?? "", reason: e.reason ?? "" }) })))
              : null);
        } finally {
          submit.disabled = false;
        }
      } } },
      h("div", { class: "field" }, h("label", { for: inputId, text: t("admin.import.file") }), file), submit),
      out));
  }
}

// --- 人事異動 -----------------------------------------------------------------------------------

async function transferSection(body) {
  const lookups = await orgLookups();
  const staff = await allStaff("active");
  const who = h("select", { id: "tr-staff", class: "input", required: true },
    h("option", { value: "", text: t("admin.transfers.choose") }),
    staff.map((s) => h("option", { value: String(s.id), text: `${plain(s.display_name)} (${plain(s.login)})` })));
  const dept = h("select", { id: "tr-dept", class: "input" }, h("option", { value: "", text: t("admin.transfers.noChange") }),
    lookups.departments.filter((d) => d.active).map((d) => h("option", { value: String(d.id), text: d.name })));
  const rank = h("select", { id: "tr-rank", class: "input" }, h("option", { value: "", text: t("admin.transfers.noChange") }),
    lookups.ranks.map((r) => h("option", { value: String(r.id), text: r.name })));
  const title = h("input", { id: "tr-title", class: "input", maxlength: "100" });
  const date = h("input", { id: "tr-date", type: "date", class: "input", required: true, value: jstToday() });
  const out = h("p", { role: "status" });
  const history = h("div", { class: "table-wrap" });
  const field = (id, key, control) => h("div", { class: "field" }, h("label", { for: id, text: t(key) }), control);
  who.addEventListener("change", async () => {
    clear(history);
    if (!who.value) return;
    const data = await get(`/api/admin/staff/${who.value}/assignments`);
    history.append(h("table", { class: "table" }, h("caption", { text: t("admin.transfers.history") }),
      h("thead", {}, h("tr", {}, ["date", "department", "rank", "title", "applied"].map((c) =>
        h("th", { scope: "col", text: t(`admin.transfers.col.${c}`) })))),
      h("tbody", {}, data.assignments.map((a) => h("tr", {},
        h("td", { text: a.effective_date }), h("td", { text: lookups.depName.get(a.department_id) || "" }),
        h("td", { text: lookups.rankName.get(a.rank_id) || "" }), h("td", { text: a.title || "" }),
        h("td", { text: a.applied_at ? fullTime(a.applied_at) : t("admin.transfers.scheduled") }))))));
  });
  body.append(h("p", { class: "hint", text: t("admin.transfers.help") }),
    h("form", { class: "form grid-form", on: { submit: async (ev) => {
      ev.preventDefault();
      if (!who.value || !date.value) {
        result(out, t("admin.transfers.missing"), false);
        return;
      }
      const item = { staff_id: Number(who.value), effective_date: date.value };
      if (dept.value) item.department_id = Number(dept.value);
      if (rank.value) item.rank_id = Number(rank.value);
      if (title.value.trim()) item.title = title.value.trim();
      try {
        await post("/api/admin/transfers", { items: [item] });
        result(out, t("admin.transfers.done"));
        who.dispatchEvent(new Event("change"));
      } catch (err) {
        result(out, err.userMessage, false);
      }
    } } },
    field("tr-staff", "admin.transfers.staff", who), field("tr-dept", "admin.transfers.department", dept),
    field("tr-rank", "admin.transfers.rank", rank), field("tr-title", "admin.transfers.titleField", title),
    field("tr-date", "admin.transfers.date", date),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", text: t("admin.transfers.submit") }))),
    out, history);
}

// --- 認証・接続 ---------------------------------------------------------------------------------

async function securitySection(body) {
  const org = await get("/api/admin/org");
  const list = h("textarea", { id: "sec-ip", class: "input", rows: "5", "aria-describedby": "sec-ip-help",
    value: org.ip_allowlist.join("\n") });
  list.value = org.ip_allowlist.join("\n");
  const radio = (value) => h("div", { class: "radio" },
    h("input", { type: "radio", name: "mfa", id: `mfa-${value}`, value, checked: org.mfa_policy === value }),
    h("label", { for: `mfa-${value}`, text: t(`admin.security.mfa.${value}`) }));
  const out = h("p", { role: "status" });
  body.append(h("form", { class: "form", on: { submit: async (ev) => {
    ev.preventDefault();
    const ip = list.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    const mfa = body.querySelector("input[name=mfa]:checked")?.value || org.mfa_policy;
    try {
      const saved = await patch("/api/admin/org", { ip_allowlist: ip, mfa_policy: mfa });
      list.value = saved.ip_allowlist.join("\n");
      result(out, t("admin.security.saved"));
    } catch (err) {
      result(out, err.userMessage, false);
    }
  } } },
  h("div", { class: "field" }, h("label", { for: "sec-ip", text: t("admin.security.ip") }), list,
    h("p", { class: "hint", id: "sec-ip-help", text: t("admin.security.ipHelp") })),
  h("fieldset", { class: "field" }, h("legend", { text: t("admin.security.mfa") }), radio("admins"), radio("all")),
  h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", text: t("common.save") }))),
  out);
}

// --- ルームの公開範囲 ---------------------------------------------------------------------------

async function roomsSection(body) {
  const rows = [];
  for (let offset = 0; offset < 100000; offset += 200) {
    const page = await get(`/api/admin/rooms${qs({ limit: 200, offset })}`);
    rows.push(...page.rooms);
    if (page.rooms.length < 200) break;
  }
  const out = h("p", { role: "status" });
  body.append(h("p", { class: "hint", text: t("admin.rooms.help") }), out,
    h("div", { class: "table-wrap" }, h("table", { class: "table" },
      h("caption", { text: t("admin.rooms.caption") }),
      h("thead", {}, h("tr", {}, ["name", "kind", "members", "policy"].map((c) =>
        h("th", { scope: "col", text: t(`admin.rooms.col.${c}`) })))),
      h("tbody", {}, rows.map((r) => {
        const id = `policy-${r.id}`;
        const select = h("select", { id, class: "input input-small", "aria-label": t("admin.rooms.policyFor", { room: roomTitle(r) }) },
          ["lgwan_only", "staff_mobile", "guests"].map((p) => h("option", { value: p, selected: r.crossing_policy === p,
            text: t(`crossing.${p}`) })));
        select.addEventListener("change", async () => {
          try {
            await patch(`/api/rooms/${r.id}`, { crossing_policy: select.value });
            r.crossing_policy = select.value;
            const live = state.rooms.get(r.id);
            if (live) live.crossing_policy = select.value;
            result(out, t("admin.rooms.saved", { room: roomTitle(r), policy: t(`crossing.${select.value}`) }));
          } catch (err) {
            select.value = r.crossing_policy;
            result(out, err.userMessage, false);
          }
        });
        return h("tr", {}, h("th", { scope: "row", text: roomTitle(r) }), h("td", { text: t(`kind.${r.kind}`) }),
          h("td", { text: String(r.member_count) }), h("td", {}, select));
      })))));
}

// --- 操作ログ -----------------------------------------------------------------------------------

const AUDIT_ACTIONS = ["auth", "auth.login", "auth.logout", "staff", "room", "message", "file", "search", "org", "audit"];

async function auditSection(body) {
  const staff = isAdmin() ? await allStaff() : [];
  const actor = h("select", { id: "audit-actor", class: "input" }, h("option", { value: "", text: t("admin.all") }),
    staff.map((s) => h("option", { value: String(s.id), text: `${plain(s.display_name)} (${plain(s.login)})` })));
  const action = h("select", { id: "audit-action", class: "input" }, h("option", { value: "", text: t("admin.all") }),
    AUDIT_ACTIONS.map((a) => h("option", { value: a, text: t(`audit.action.${a.replace(".", "_")}`) })));
  const since = h("input", { id: "audit-since", type: "date", class: "input" });
  const until = h("input", { id: "audit-until", type: "date", class: "input" });
  const tbody = h("tbody", {});
  const more = h("button", { type: "button", class: "button secondary", text: t("admin.audit.more"), hidden: true });
  const verifyOut = h("p", { role: "status" });
  const countOut = h("p", { class: "hint", role: "status" });
  let lastId = null;
  const load = async (append) => {
    const params = { actor_id: actor.value, action: action.value, limit: 100,
      since: since.value ? jstDateToUtcIso(since.value) : "", until: until.value ? jstDateToUtcIso(until.value, 1) : "",
      before_id: append ? lastId : "" };
    const data = await get(`/api/admin/audit${qs(params)}`);
    if (!append) clear(tbody);
    for (const e of data.entries) {
      let detail = e.detail;
      try {
        detail = Object.entries(JSON.parse(e.detail)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
      } catch {
        // keep the text
      }
      tbody.append(h("tr", { class: e.outcome !== "ok" ? "warn" : "" },
        h("td", { text: fullTime(e.at) }), h("td", { text: e.actor_login }), h("td", { text: e.actor_affiliation }),
        h("td", { text: e.source_ip }), h("td", {}, h("code", { text: e.action })),
        h("td", { text: e.target_type ? `${e.target_type} ${e.target_id}` : "" }),
        h("td", { text: t(`audit.outcome.${e.outcome}`) }), h("td", { class: "detail", text: detail })));
    }
    if (data.entries.length) lastId = data.entries[data.entries.length - 1].id;
    more.hidden = data.entries.length < 100;
    countOut.textContent = t("admin.audit.count", { count: tbody.childElementCount });
  };
  more.addEventListener("click", () => load(true));
  const field = (id, key, control) => h("div", { class: "field" }, h("label", { for: id, text: t(key) }), control);
  body.append(
    h("form", { class: "filters", on: { submit: (ev) => { ev.preventDefault(); load(false); } } },
      isAdmin() ? field("audit-actor", "admin.audit.actor", actor) : null,
      field("audit-action", "admin.audit.action", action), field("audit-since", "admin.audit.since", since),
      field("audit-until", "admin.audit.until", until),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", text: t("admin.audit.apply") }),
        h("button", { type: "button", class: "button secondary", id: "audit-export", text: t("admin.audit.export"), on: { click: async () => {
          const params = { actor_id: actor.value, action: action.value,
            since: since.value ? jstDateToUtcIso(since.value) : "", until: until.value ? jstDateToUtcIso(until.value, 1) : "" };
          try {
            const name = await download(`/api/admin/audit/export${qs(params)}`, { fallbackName: "kakehashi.zip" });
            result(verifyOut, t("export.done", { name }));
          } catch (err) {
            result(verifyOut, err.userMessage, false);
          }
        } } }),
        h("button", { type: "button", class: "button secondary", text: t("admin.audit.verify"), on: { click: async () => {
          try {
            const res = await post("/api/admin/audit/verify", {});
            result(verifyOut, res.ok ? t("admin.audit.verifyOk", { count: res.checked })
              : t("admin.audit.verifyBad", { id: res.first_bad_id, reason: res.reason || "" }), res.ok);
          } catch (err) {
            result(verifyOut, err.userMessage, false);
          }
        } } }))),
    verifyOut, countOut,
    h("div", { class: "table-wrap" }, h("table", { class: "table audit-table" },
      h("caption", { text: t("admin.audit.caption") }),
      h("thead", {}, h("tr", {}, ["at", "actor", "affiliation", "ip", "action", "target", "outcome", "detail"].map((c) =>
        h("th", { scope: "col", text: t(`admin.audit.col.${c}`) })))), tbody)),
    more);
  await load(false);
}
