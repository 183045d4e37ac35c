// 業務: マイタスク, 安否確認, 一斉送信 (受信・送信), お知らせ, and for 文書管理担当 the 訴訟ホールド, 廃棄 and
// 情報公開請求 screens. Routes: #/work/<section>[/<id>]. Dashboards refresh on live events ("kk-event").
import { del, get, patch, post, qs } from "../api.js";
import { confirmDialog } from "../dialog.js";
import { clear, h, plain } from "../dom.js";
import { fullTime, highlight, jstDateToUtcIso, snippet } from "../format.js";
import { t } from "../i18n.js";
import { announce } from "../notify.js";
import { state } from "../state.js";
import { checkbox, departmentPicker, departments, download, field, result, staffPicker, table } from "../widgets.js";
import { safetyAnswerForm } from "./alerts.js";
import { roomTitle } from "./sidebar.js";

const MANAGER_ROLES = ["org_admin", "server_admin", "safety_manager"];
const RECORDS_ROLES = ["records_officer", "org_admin", "server_admin"];
export const isManager = () => MANAGER_ROLES.includes(state.me?.role);
export const isRecordsOfficer = () => RECORDS_ROLES.includes(state.me?.role);

function sections() {
  const list = ["tasks", "safety", "inbox", "notices"];
  if (isManager()) list.push("broadcasts");
  if (isRecordsOfficer()) list.push("holds", "disposal", "disclosure");
  return list;
}

let cleanup = [];
function onLive(fn) {
  const handler = (ev) => fn(ev.detail.type, ev.detail.data);
  window.addEventListener("kk-event", handler);
  cleanup.push(() => window.removeEventListener("kk-event", handler));
}
function every(ms, fn) {
  const timer = setInterval(fn, ms);
  cleanup.push(() => clearInterval(timer));
}

export async function renderWork(main, section, id) {
  for (const fn of cleanup) fn();
  cleanup = [];
  const allowed = sections();
  if (!allowed.includes(section)) section = "tasks";
  const body = h("div", { class: "admin-body" });
  clear(main).append(h("div", { class: "admin work" },
    h("header", { class: "room-header" }, h("h1", { id: "work-title", class: "room-title", text: t("work.title") })),
    h("nav", { class: "admin-nav", "aria-label": t("work.sections") },
      h("ul", {}, allowed.map((s) => h("li", {}, h("a", { href: `#/work/${s}`, class: "admin-tab",
        "aria-current": s === section ? "page" : null, text: t(`work.${s}.title`) }))))),
    body));
  const heading = h("h2", { text: t(`work.${section}.title`), tabindex: "-1" });
  body.append(heading);
  try {
    const fn = { tasks: tasksSection, safety: safetySection, inbox: inboxSection, notices: noticesSection,
      broadcasts: broadcastsSection, holds: holdsSection, disposal: disposalSection, disclosure: disclosureSection }[section];
    await fn(body, id);
  } catch (err) {
    body.append(h("p", { class: "form-error", role: "alert", text: err.userMessage || String(err) }));
  }
  // Stop refreshing once this screen is gone (its own listeners only: a newer screen has its own).
  const mine = cleanup;
  const watcher = setInterval(() => {
    if (!body.isConnected) {
      clearInterval(watcher);
      for (const fn of mine) fn();
      mine.length = 0;
    }
  }, 1000);
}

/** Audience: everyone / departments / named people. value() → {} | {department_ids} | {staff_ids}. */
async function audienceField(prefix, { allowAll = true, only } = {}) {
  const deps = await departmentPicker("audience.departments", { only });
  const people = staffPicker({ labelKey: "audience.staff" });
  const radio = (value, key) => h("div", { class: "radio" },
    h("input", { type: "radio", name: `${prefix}-aud`, id: `${prefix}-aud-${value}`, value,
      checked: value === (allowAll ? "all" : "departments") }),
    h("label", { for: `${prefix}-aud-${value}`, text: t(key) }));
  const depBox = h("div", { class: "aud-box", hidden: allowAll }, deps.el);
  const staffBox = h("div", { class: "aud-box", hidden: true }, people.el);
  const el = h("fieldset", { class: "field audience" }, h("legend", { text: t("audience.legend") }),
    allowAll ? radio("all", "audience.all") : null, radio("departments", "audience.byDepartment"),
    only ? null : radio("staff", "audience.byStaff"), depBox, staffBox);
  el.addEventListener("change", (ev) => {
    if (ev.target.name !== `${prefix}-aud`) return;
    depBox.hidden = ev.target.value !== "departments";
    staffBox.hidden = ev.target.value !== "staff";
  });
  return {
    el,
    value() {
      const kind = el.querySelector(`input[name=${prefix}-aud]:checked`)?.value;
      if (kind === "departments") return { department_ids: deps.value() };
      if (kind === "staff") return { staff_ids: people.value() };
      return {};
    },
  };
}

function emptyAudience(v) {
  return (v.department_ids && !v.department_ids.length) || (v.staff_ids && !v.staff_ids.length);
}

function statCard(value, key, extra = "") {
  return h("li", { class: extra }, h("span", { class: "stat-value", text: String(value) }),
    h("span", { class: "stat-label", text: t(key) }));
}

// --- マイタスク -----------------------------------------------------------------------------------

async function tasksSection(body) {
  const showDone = checkbox("task.showDone", { id: "task-show-done" });
  const list = h("div", {});
  const out = h("p", { id: "task-status", role: "status" });
  const load = async () => {
    const data = await get(`/api/tasks${showDone.input.checked ? "?done=1" : ""}`);
    clear(list);
    if (!data.tasks.length) {
      list.append(h("p", { class: "empty", text: t("task.none") }));
      return;
    }
    list.append(h("ul", { class: "task-list" }, data.tasks.map((task) => {
      const select = h("select", { class: "input input-small", "aria-label": t("task.statusFor", { title: plain(task.title) }) },
        ["open", "doing", "done"].map((s) => h("option", { value: s, selected: task.status === s, text: t(`task.status.${s}`) })));
      select.addEventListener("change", async () => {
        try {
          await patch(`/api/tasks/${task.id}`, { status: select.value });
          task.status = select.value;
          result(out, t("task.statusDone", { title: plain(task.title), status: t(`task.status.${select.value}`) }));
        } catch (err) {
          select.value = task.status;
          result(out, err.userMessage, false);
        }
      });
      const room = task.room_id ? state.rooms.get(task.room_id) : null;
      const overdue = task.due_date && task.status !== "done" && task.due_date < new Date().toISOString().slice(0, 10);
      return h("li", { class: `task-item status-${task.status}`, dataset: { taskId: String(task.id) } },
        h("p", { class: "task-title", text: task.title }),
        h("p", { class: "hint" }, task.due_date ? h("span", { class: overdue ? "overdue" : "", text: t(overdue ? "task.overdue" : "task.dueOn", { date: task.due_date }) }) : t("task.noDue"),
          room ? [t("common.sep"), h("a", { href: `#/room/${room.id}`, text: t("task.fromRoom", { room: roomTitle(room) }) })] : null),
        h("div", { class: "row-actions" }, select));
    })));
  };
  showDone.input.addEventListener("change", load);
  body.append(h("p", { class: "hint", text: t("task.help") }), showDone.el, out, list);
  onLive((type) => {
    if (type.startsWith("task.")) load();
  });
  await load();
}

// --- 安否確認 -------------------------------------------------------------------------------------

async function safetySection(body, id) {
  if (id && isManager()) {
    await safetyDashboard(body, id);
    return;
  }
  const mine = await get("/api/safety");
  const myBox = h("section", { class: "card", "aria-labelledby": "safety-mine-h" },
    h("h3", { id: "safety-mine-h", text: t("safety.mine") }));
  if (!mine.checks.length) myBox.append(h("p", { class: "empty", text: t("safety.noneMine") }));
  for (const c of mine.checks) {
    myBox.append(h("article", { class: "safety-item", "aria-labelledby": `sm-${c.id}` },
      h("h4", { id: `sm-${c.id}`, text: c.title }),
      h("p", { class: "hint", text: [fullTime(c.started_at), c.closed_at ? t("safety.closed") : null,
        c.answered ? t("safety.alreadyAnswered") : t("safety.notAnswered")].filter(Boolean).join(t("common.sep")) }),
      c.message ? h("p", { text: c.message }) : null,
      c.closed_at ? null : safetyAnswerForm(c, { idPrefix: "page" })));
  }
  body.append(myBox);
  if (!isManager()) return;
  body.append(await safetyStartForm(), await safetyManagedList());
}

async function safetyStartForm() {
  const templates = (await get("/api/safety/templates")).templates;
  const template = h("select", { id: "safety-template", class: "input" },
    Object.keys(templates).map((k) => h("option", { value: k, text: t(`safety.template.${k}`) })));
  const title = h("input", { id: "safety-title", class: "input", maxlength: "200", required: true });
  const message = h("textarea", { id: "safety-message", class: "input", rows: "3", maxlength: "2000" });
  const qBoxes = ["condition", "attend", "eta", "location", "note"].map((q) => {
    const id = `safety-q-${q}`;
    return h("span", { class: "check" }, h("input", { type: "checkbox", id, value: q, disabled: q === "condition" }),
      h("label", { for: id, text: t(`safety.q.${q}`) }));
  });
  const apply = () => {
    const tpl = templates[template.value];
    title.value = tpl.title;
    message.value = tpl.message;
    for (const box of qBoxes) {
      const input = box.querySelector("input");
      input.checked = tpl.questions.includes(input.value);
    }
  };
  template.addEventListener("change", apply);
  apply();
  const audience = await audienceField("safety");
  const out = h("p", { role: "status" });
  return h("form", { class: "form card", "aria-labelledby": "safety-start-h", on: { submit: async (ev) => {
    ev.preventDefault();
    const aud = audience.value();
    if (emptyAudience(aud)) {
      result(out, t("audience.empty"), false);
      return;
    }
    const questions = qBoxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    if (!questions.includes("condition")) questions.unshift("condition");
    const ok = await confirmDialog({ title: t("safety.startConfirm"), message: t("safety.startExplain", { title: title.value }),
      confirmLabel: t("safety.start") });
    if (!ok) return;
    try {
      const check = await post("/api/safety", { title: title.value.trim(), message: message.value.trim(), questions, ...aud });
      announce(t("safety.started"));
      window.location.hash = `#/work/safety/${check.id}`;
    } catch (err) {
      result(out, err.userMessage, false);
    }
  } } },
  h("h3", { id: "safety-start-h", text: t("safety.startHeading") }),
  field(template, "safety.templateField"), field(title, "safety.titleField"), field(message, "safety.messageField"),
  h("fieldset", { class: "field" }, h("legend", { text: t("safety.questions") }), h("div", { class: "form-actions" }, qBoxes)),
  audience.el,
  h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button danger", text: t("safety.start") })), out);
}

async function safetyManagedList() {
  const data = await get("/api/safety/managed");
  return h("section", { class: "card", "aria-labelledby": "safety-managed-h" },
    h("h3", { id: "safety-managed-h", text: t("safety.managed") }),
    data.checks.length ? h("ul", { class: "link-list" }, data.checks.map((c) => h("li", {},
      h("a", { href: `#/work/safety/${c.id}`, text: c.title }),
      h("span", { class: "hint", text: ` ${fullTime(c.started_at)}${c.closed_at ? `${t("common.sep")}${t("safety.closed")}` : ""}` }))))
      : h("p", { class: "empty", text: t("safety.noneManaged") }));
}

async function safetyDashboard(body, id) {
  const out = h("p", { role: "status" });
  const stats = h("ul", { class: "stats" });
  const tableBox = h("div", {});
  const head = h("div", {});
  const updated = h("p", { class: "hint", "aria-live": "off" });
  let check = null;
  let lastAnswered = null;
  const load = async () => {
    const data = await get(`/api/safety/${id}/dashboard`);
    check = data.check;
    const tot = data.totals;
    clear(head).append(h("h3", { id: "dash-title", text: t("safety.dashboardFor", { title: plain(check.title) }) }),
      h("p", { class: "hint", text: [t("safety.startedAt", { time: fullTime(check.started_at) }),
        check.closed_at ? t("safety.closedAt", { time: fullTime(check.closed_at) }) : t("safety.open")].join(t("common.sep")) }));
    clear(stats).append(statCard(tot.targets, "safety.stat.targets"), statCard(tot.answered, "safety.stat.answered"),
      statCard(tot.unanswered, "safety.stat.unanswered"),
      statCard(tot.needs_attention, "safety.stat.attention", tot.needs_attention ? "stat-alert" : ""),
      statCard(tot.attend_yes, "safety.stat.attend"));
    clear(tableBox).append(table(t("safety.byDepartment"),
      ["safety.col.department", "safety.col.targets", "safety.col.answered", "safety.col.unanswered", "safety.condition.safe",
        "safety.condition.minor", "safety.condition.serious", "safety.condition.need_help", "safety.col.attend"],
      data.departments.map((d) => [d.department, d.targets, d.answered, d.unanswered, d.safe, d.minor, d.serious, d.need_help,
        d.attend_yes].map((v, i) => (i === 0 ? plain(v) : String(v)))), { className: "table safety-table" }));
    updated.textContent = t("safety.updated", { time: fullTime(new Date().toISOString()) });
    if (lastAnswered !== null && tot.answered !== lastAnswered) {
      announce(t("safety.progress", { answered: tot.answered, targets: tot.targets }));
    }
    lastAnswered = tot.answered;
  };
  const button = (key, fn, cls = "secondary") => h("button", { type: "button", class: `button ${cls}`, text: t(key), on: { click: fn } });
  body.append(h("p", {}, h("a", { href: "#/work/safety", text: t("safety.back") })), head, stats,
    h("div", { class: "form-actions" },
      button("safety.remind", async () => {
        try {
          const res = await post(`/api/safety/${id}/remind`, {});
          result(out, t("safety.reminded", { count: res.reminded }));
        } catch (err) {
          result(out, err.userMessage, false);
        }
      }),
      button("safety.close", async () => {
        const ok = await confirmDialog({ title: t("safety.closeConfirm"), message: t("safety.closeExplain"),
          confirmLabel: t("safety.close"), danger: true });
        if (!ok) return;
        try {
          await post(`/api/safety/${id}/close`, {});
          result(out, t("safety.closedDone"));
          await load();
        } catch (err) {
          result(out, err.userMessage, false);
        }
      }, "danger-outline"),
      h("a", { href: `/api/safety/${id}/export?format=xlsx`, class: "button secondary", download: "", text: t("safety.exportXlsx") }),
      h("a", { href: `/api/safety/${id}/export?format=csv`, class: "button secondary", download: "", text: t("safety.exportCsv") })),
    out, tableBox, updated);
  await load();
  onLive((type, d) => {
    if (type === "safety.answer" && d.check_id === id) load().catch(() => {});
  });
  every(5000, () => load().catch(() => {}));
}

// --- 一斉送信: 受信 ---------------------------------------------------------------------------------

async function inboxSection(body) {
  const list = h("div", {});
  const load = async () => {
    const data = await get("/api/broadcasts");
    clear(list);
    if (!data.broadcasts.length) {
      list.append(h("p", { class: "empty", text: t("broadcast.noneInbox") }));
      return;
    }
    list.append(h("ul", { class: "inbox-list" }, data.broadcasts.map((b) => {
      const out = h("p", { role: "status" });
      const mark = async (ack) => {
        try {
          await post(`/api/broadcasts/${b.id}/${ack ? "ack" : "read"}`, {});
          announce(t(ack ? "broadcast.ackDone" : "broadcast.readDone"));
          await load();
          list.querySelector(`[data-broadcast-id="${b.id}"] h3`)?.focus();
        } catch (err) {
          result(out, err.userMessage, false);
        }
      };
      const stateKey = b.acked_at ? "broadcast.state.acked" : b.read_at ? "broadcast.state.read" : "broadcast.state.unread";
      return h("li", { class: `inbox-item${b.important ? " important" : ""}`, dataset: { broadcastId: String(b.id) } },
        h("h3", { tabindex: "-1", text: b.title }),
        h("p", { class: "hint" }, h("span", { class: `tag state-${b.acked_at ? "acked" : b.read_at ? "read" : "unread"}`, text: t(stateKey) }),
          " ", t("broadcast.from", { affiliation: plain(b.sender_affiliation || ""), time: fullTime(b.created_at) }),
          b.ack_required ? [t("common.sep"), h("strong", { text: t("broadcast.ackRequired") })] : null),
        h("p", { class: "msg-body", text: b.body }),
        h("div", { class: "row-actions" },
          b.ack_required && !b.acked_at ? h("button", { type: "button", class: "button primary small broadcast-ack",
            text: t("broadcast.ack"), "aria-label": t("broadcast.ackLabel", { title: plain(b.title) }), on: { click: () => mark(true) } }) : null,
          !b.ack_required && !b.read_at ? h("button", { type: "button", class: "button secondary small",
            text: t("broadcast.markRead"), on: { click: () => mark(false) } }) : null),
        out);
    })));
  };
  body.append(list);
  onLive((type) => {
    if (type.startsWith("broadcast.")) load();
  });
  await load();
}

// --- 一斉送信: 送信（管理者・安否確認担当） -------------------------------------------------------------

async function broadcastsSection(body, id) {
  if (id) {
    await broadcastStatus(body, id);
    return;
  }
  const title = h("input", { id: "bc-title", class: "input", maxlength: "200", required: true });
  const text = h("textarea", { id: "bc-body", class: "input", rows: "5", maxlength: "10000", required: true });
  const important = checkbox("broadcast.important", { id: "bc-important" });
  const ack = checkbox("broadcast.ackRequired", { id: "bc-ack", checked: true });
  const audience = await audienceField("bc");
  const out = h("p", { role: "status" });
  const sent = await get("/api/broadcasts/sent");
  body.append(h("form", { class: "form card", "aria-labelledby": "bc-new-h", on: { submit: async (ev) => {
    ev.preventDefault();
    const aud = audience.value();
    if (!title.value.trim() || !text.value.trim()) {
      result(out, t("broadcast.needText"), false);
      return;
    }
    if (emptyAudience(aud)) {
      result(out, t("audience.empty"), false);
      return;
    }
    try {
      const b = await post("/api/broadcasts", { title: title.value.trim(), body: text.value.trim(),
        important: important.input.checked, ack_required: ack.input.checked, ...aud });
      announce(t("broadcast.sent"));
      window.location.hash = `#/work/broadcasts/${b.id}`;
    } catch (err) {
      result(out, err.userMessage, false);
    }
  } } },
  h("h3", { id: "bc-new-h", text: t("broadcast.compose") }),
  field(title, "broadcast.titleField"), field(text, "broadcast.bodyField"),
  h("div", { class: "form-actions" }, important.el, ack.el), audience.el,
  h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", text: t("broadcast.send") })), out),
  h("section", { class: "card", "aria-labelledby": "bc-sent-h" }, h("h3", { id: "bc-sent-h", text: t("broadcast.sentList") }),
    sent.broadcasts.length ? h("ul", { class: "link-list" }, sent.broadcasts.map((b) => h("li", {},
      h("a", { href: `#/work/broadcasts/${b.id}`, text: b.title }), h("span", { class: "hint", text: ` ${fullTime(b.created_at)}` }))))
      : h("p", { class: "empty", text: t("broadcast.noneSent") })));
}

async function broadcastStatus(body, id) {
  const box = h("div", {});
  const out = h("p", { role: "status" });
  const load = async () => {
    const data = await get(`/api/broadcasts/${id}/status`);
    const b = data.broadcast;
    const tot = data.totals;
    clear(box).append(
      h("h3", { text: t("broadcast.statusFor", { title: plain(b.title) }) }),
      h("p", { class: "hint", text: [fullTime(b.created_at), b.ack_required ? t("broadcast.ackRequired") : null].filter(Boolean).join(t("common.sep")) }),
      h("ul", { class: "stats" }, statCard(tot.recipients, "broadcast.stat.recipients"), statCard(tot.delivered, "broadcast.stat.delivered"),
        statCard(tot.read, "broadcast.stat.read"), statCard(tot.acked, "broadcast.stat.acked")),
      table(t("broadcast.byDepartment"), ["broadcast.col.department", "broadcast.stat.recipients", "broadcast.stat.delivered",
        "broadcast.stat.read", "broadcast.stat.acked"],
      data.groups.map((g) => [plain(g.department), String(g.recipients), String(g.delivered), String(g.read), String(g.acked)]),
      { className: "table broadcast-table" }),
      h("h4", { text: t("broadcast.pending", { count: data.pending_count }) }),
      data.pending.length ? h("ul", { class: "people columns" }, data.pending.map((c) => h("li", { class: "person" },
        h("span", { class: "person-name", text: c.display_name }), h("span", { class: "person-detail", text: c.department || "" }))))
        : h("p", { class: "empty", text: t("broadcast.nonePending") }));
  };
  body.append(h("p", {}, h("a", { href: "#/work/broadcasts", text: t("broadcast.back") })),
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "button secondary", text: t("broadcast.remind"),
      on: { click: async () => {
        try {
          const res = await post(`/api/broadcasts/${id}/remind`, {});
          result(out, t("broadcast.reminded", { count: res.reminded }));
        } catch (err) {
          result(out, err.userMessage, false);
        }
      } } })), out, box);
  await load();
  onLive((type, d) => {
    if (type === "broadcast.receipt" && d.broadcast_id === id) load().catch(() => {});
  });
  every(10000, () => load().catch(() => {}));
}

// --- お知らせ / 掲示板 -------------------------------------------------------------------------------

function ownDepartmentIds(all) {
  const mine = state.me.staff.department_id;
  const out = new Set(mine ? [mine] : []);
  let grew = true;
  while (grew) {
    grew = false;
    for (const d of all) if (d.parent_id && out.has(d.parent_id) && !out.has(d.id)) { out.add(d.id); grew = true; }
  }
  return out;
}

async function noticesSection(body, id) {
  if (id) {
    await noticeDetail(body, id);
    return;
  }
  const data = await get("/api/notices");
  const list = data.notices.length ? h("ul", { class: "notice-list" }, data.notices.map((n) => h("li", { class: `notice-item${n.read ? "" : " unread"}` },
    h("a", { href: `#/work/notices/${n.id}`, class: "notice-link", text: n.title }),
    h("span", { class: `tag state-${n.read ? "read" : "unread"}`, text: t(n.read ? "notice.read" : "notice.unread") }),
    h("span", { class: "hint", text: ` ${plain(n.author_affiliation || "")}${t("common.sep")}${fullTime(n.created_at)}` }))))
    : h("p", { class: "empty", text: t("notice.none") });
  const all = await departments();
  const manager = isManager();
  const audience = await audienceField("nt", { allowAll: manager, only: manager ? null : ownDepartmentIds(all) });
  const title = h("input", { id: "nt-title", class: "input", maxlength: "200" });
  const text = h("textarea", { id: "nt-body", class: "input", rows: "5", maxlength: "10000" });
  const confirmRead = checkbox("notice.readConfirmation", { id: "nt-confirm", checked: true });
  const file = h("input", { id: "nt-file", type: "file", class: "input" });
  const out = h("p", { role: "status" });
  body.append(h("section", { class: "card", "aria-labelledby": "nt-list-h" }, h("h3", { id: "nt-list-h", text: t("notice.list") }), list),
    h("form", { class: "form card", "aria-labelledby": "nt-new-h", on: { submit: async (ev) => {
      ev.preventDefault();
      const aud = audience.value();
      if (!title.value.trim() || !text.value.trim()) {
        result(out, t("notice.needText"), false);
        return;
      }
      if (emptyAudience(aud)) {
        result(out, t("audience.empty"), false);
        return;
      }
      try {
        const n = await post("/api/notices", { title: title.value.trim(), body: text.value.trim(),
          read_confirmation: confirmRead.input.checked, ...(aud.department_ids ? { department_ids: aud.department_ids } : {}) });
        if (file.files[0]) {
          const form = new FormData();
          form.append("file", file.files[0], file.files[0].name);
          await post(`/api/notices/${n.id}/attachments`, form);
        }
        announce(t("notice.posted"));
        window.location.hash = `#/work/notices/${n.id}`;
      } catch (err) {
        result(out, err.userMessage, false);
      }
    } } },
    h("h3", { id: "nt-new-h", text: t("notice.post") }),
    h("p", { class: "hint", text: t(manager ? "notice.postHelpManager" : "notice.postHelp") }),
    field(title, "notice.titleField"), field(text, "notice.bodyField"), audience.el, confirmRead.el,
    field(file, "notice.attachment"),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", text: t("notice.submit") })), out));
}

async function noticeDetail(body, id) {
  const n = await get(`/api/notices/${id}`);
  const out = h("p", { role: "status" });
  const mine = n.author_id === state.me.staff.id;
  const readsBox = h("div", {});
  body.append(h("p", {}, h("a", { href: "#/work/notices", text: t("notice.back") })),
    h("article", { class: "card notice-detail", "aria-labelledby": "nt-detail-h" },
      h("h3", { id: "nt-detail-h", text: n.title }),
      h("p", { class: "hint", text: `${plain(n.author_affiliation || "")}${t("common.sep")}${fullTime(n.created_at)}` }),
      h("p", { class: "msg-body", text: n.body }),
      n.attachments.length ? h("ul", { class: "attachments", "aria-label": t("msg.attachments") }, n.attachments.map((a) =>
        h("li", {}, h("a", { href: `/api/notices/${n.id}/attachments/${a.id}`, download: plain(a.filename), class: "file-link",
          text: plain(a.filename) })))) : null,
      h("div", { class: "form-actions" }, h("button", { type: "button", class: "button primary", text: t("notice.confirmRead"),
        on: { click: async () => {
          try {
            await post(`/api/notices/${n.id}/read`, {});
            result(out, t("notice.readDone"));
          } catch (err) {
            result(out, err.userMessage, false);
          }
        } } })), out),
    readsBox);
  if (mine || isManager()) {
    const data = await get(`/api/notices/${n.id}/reads`);
    readsBox.append(h("section", { class: "card", "aria-labelledby": "nt-reads-h" },
      h("h3", { id: "nt-reads-h", text: t("notice.reads", { read: data.read_count, audience: data.audience }) }),
      table(t("notice.byDepartment"), ["notice.col.department", "notice.col.read", "notice.col.audience"],
        data.departments.map((d) => [plain(d.department), String(d.read), String(d.audience)])),
      h("h4", { text: t("notice.pending", { count: data.pending.length }) }),
      data.pending.length ? h("ul", { class: "people columns" }, data.pending.map((c) => h("li", { class: "person" },
        h("span", { class: "person-name", text: c.display_name }), h("span", { class: "person-detail", text: c.department || "" }))))
        : h("p", { class: "empty", text: t("notice.allRead") })));
  }
}

// --- 訴訟ホールド -----------------------------------------------------------------------------------

async function holdsSection(body) {
  const out = h("p", { role: "status" });
  const listBox = h("div", {});
  const rooms = [...state.rooms.values()].filter((r) => r.kind !== "dm");
  const room = h("select", { id: "hold-room", class: "input" }, h("option", { value: "", text: t("holds.chooseRoom") }),
    rooms.map((r) => h("option", { value: String(r.id), text: roomTitle(r) })));
  const message = h("input", { id: "hold-message", type: "number", min: "1", class: "input input-small", inputmode: "numeric" });
  const reason = h("input", { id: "hold-reason", class: "input", maxlength: "500", required: true });
  const showAll = checkbox("holds.showReleased", { id: "hold-all" });
  const load = async () => {
    const data = await get(`/api/records/holds${showAll.input.checked ? "?all=1" : ""}`);
    clear(listBox).append(data.holds.length ? table(t("holds.caption"), ["holds.col.target", "holds.col.reason", "holds.col.placed",
      "holds.col.state", "holds.col.actions"], data.holds.map((x) => [
      x.message_id ? t("holds.message", { id: x.message_id }) : t("holds.room", { room: plain(state.rooms.get(x.room_id)?.name || `#${x.room_id}`) }),
      plain(x.reason), fullTime(x.placed_at), x.released_at ? t("holds.released") : t("holds.active"),
      x.released_at ? "" : h("button", { type: "button", class: "button danger-outline small", text: t("holds.release"),
        "aria-label": t("holds.releaseLabel", { reason: plain(x.reason) }), on: { click: async () => {
          const ok = await confirmDialog({ title: t("holds.releaseConfirm"), message: t("holds.releaseExplain"),
            confirmLabel: t("holds.release"), danger: true });
          if (!ok) return;
          try {
            await del(`/api/records/holds/${x.id}`);
            result(out, t("holds.releasedDone"));
            await load();
          } catch (err) {
            result(out, err.userMessage, false);
          }
        } } })]), { className: "table holds-table" }) : h("p", { class: "empty", text: t("holds.none") }));
  };
  showAll.input.addEventListener("change", load);
  body.append(h("p", { class: "hint", text: t("holds.help") }),
    h("form", { class: "form card", "aria-labelledby": "hold-new-h", on: { submit: async (ev) => {
      ev.preventDefault();
      const payload = { reason: reason.value.trim() };
      if (message.value) payload.message_id = Number(message.value);
      else if (room.value) payload.room_id = Number(room.value);
      if (!payload.reason || (!payload.message_id && !payload.room_id)) {
        result(out, t("holds.missing"), false);
        return;
      }
      try {
        await post("/api/records/holds", payload);
        result(out, t("holds.placed"));
        reason.value = "";
        message.value = "";
        await load();
      } catch (err) {
        result(out, err.userMessage, false);
      }
    } } },
    h("h3", { id: "hold-new-h", text: t("holds.place") }),
    h("div", { class: "filters" }, field(room, "holds.roomField"), field(message, "holds.messageField", { hint: "holds.messageHint" })),
    field(reason, "holds.reason"),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", text: t("holds.placeSubmit") }))),
    out, showAll.el, listBox);
  await load();
}

// --- 廃棄: 候補 → 起案 → 承認（別の人） → 実行 -------------------------------------------------------------

async function disposalSection(body) {
  const out = h("p", { role: "status" });
  const candBox = h("div", {});
  const propBox = h("div", {});
  const load = async () => {
    const [cands, props] = await Promise.all([get("/api/records/disposal-candidates"), get("/api/records/disposals")]);
    clear(candBox);
    if (!cands.candidates.length) candBox.append(h("p", { class: "empty", text: t("disposal.noCandidates") }));
    else {
      candBox.append(table(t("disposal.candidates"), ["disposal.col.pick", "disposal.col.title", "disposal.col.until", "disposal.col.hold"],
        cands.candidates.map((c) => [
          h("input", { type: "checkbox", class: "cand", value: String(c.id), "aria-label": t("disposal.pickLabel", { id: c.message_id }) }),
          `${plain(c.title) || t("disposal.untitled")}（${t("holds.message", { id: c.message_id })}）`, c.retain_until,
          c.held ? t("disposal.held") : "—"])),
      h("div", { class: "form-actions" }, h("button", { type: "button", class: "button primary", text: t("disposal.propose"),
        on: { click: async () => {
          const ids = [...candBox.querySelectorAll("input.cand:checked")].map((i) => Number(i.value));
          if (!ids.length) {
            result(out, t("disposal.pickSome"), false);
            return;
          }
          try {
            const res = await post("/api/records/disposals", { mark_ids: ids });
            result(out, t("disposal.proposed", { id: res.id }));
            await load();
          } catch (err) {
            result(out, err.userMessage, false);
          }
        } } })));
    }
    clear(propBox).append(props.disposals.length ? table(t("disposal.proposals"), ["disposal.col.id", "disposal.col.state",
      "disposal.col.items", "disposal.col.proposed", "disposal.col.actions"], props.disposals.map((d) => [
      `#${d.id}`, t(`disposal.state.${d.state}`), String(d.mark_ids.length), fullTime(d.proposed_at),
      h("div", { class: "row-actions" },
        d.state === "proposed" ? h("button", { type: "button", class: "button secondary small", text: t("disposal.approve"),
          "aria-label": t("disposal.approveLabel", { id: d.id }), on: { click: () => act(d.id, "approve") } }) : null,
        d.state !== "executed" ? h("button", { type: "button", class: "button danger-outline small", text: t("disposal.execute"),
          "aria-label": t("disposal.executeLabel", { id: d.id }), on: { click: () => act(d.id, "execute") } }) : null)]),
    { className: "table disposals-table" }) : h("p", { class: "empty", text: t("disposal.noProposals") }));
  };
  const act = async (id, what) => {
    if (what === "execute") {
      const ok = await confirmDialog({ title: t("disposal.executeConfirm", { id }), message: t("disposal.executeExplain"),
        confirmLabel: t("disposal.execute"), danger: true });
      if (!ok) return;
    }
    try {
      const res = await post(`/api/records/disposals/${id}/${what}`, {});
      result(out, what === "approve" ? t("disposal.approved", { id }) : t("disposal.executed", { id, count: res.messages_removed }));
      await load();
    } catch (err) {
      result(out, err.userMessage, false);
    }
  };
  body.append(h("p", { class: "hint", text: t("disposal.help") }), out,
    h("section", { class: "card", "aria-labelledby": "disp-c-h" }, h("h3", { id: "disp-c-h", text: t("disposal.candidates") }), candBox),
    h("section", { class: "card", "aria-labelledby": "disp-p-h" }, h("h3", { id: "disp-p-h", text: t("disposal.proposals") }), propBox));
  await load();
}

// --- 情報公開請求 ------------------------------------------------------------------------------------

async function disclosureSection(body) {
  const q = h("input", { id: "dq-text", type: "search", class: "input", maxlength: "200" });
  const since = h("input", { id: "dq-since", type: "date", class: "input" });
  const until = h("input", { id: "dq-until", type: "date", class: "input" });
  const staff = (await get("/api/staff?limit=200")).staff;
  const sender = h("select", { id: "dq-sender", class: "input" }, h("option", { value: "", text: t("admin.all") }),
    staff.map((s) => h("option", { value: String(s.id), text: `${plain(s.display_name)}（${plain(s.department || "")}）` })));
  const affiliation = h("input", { id: "dq-affiliation", class: "input", maxlength: "200" });
  const wareki = checkbox("export.wareki", { id: "dq-wareki" });
  const out = h("p", { role: "status" });
  const results = h("div", {});
  const params = () => ({ q: q.value.trim(), since: since.value ? jstDateToUtcIso(since.value) : "",
    until: until.value ? jstDateToUtcIso(until.value, 1) : "", sender_id: sender.value, affiliation: affiliation.value.trim() });
  const hasCriteria = (p) => p.q || p.sender_id || p.affiliation;
  const search = async () => {
    const p = params();
    if (!hasCriteria(p)) {
      result(out, t("disclosure.needCriteria"), false);
      return;
    }
    try {
      const data = await get(`/api/records/search${qs({ ...p, limit: 200 })}`);
      result(out, t("disclosure.count", { count: data.results.length }));
      clear(results).append(data.results.length ? table(t("disclosure.caption"), ["disclosure.col.time", "disclosure.col.room",
        "disclosure.col.sender", "disclosure.col.affiliation", "disclosure.col.body", "disclosure.col.record"],
      data.results.map((r) => [r.created_at_jst || fullTime(r.created_at), plain(r.room), plain(r.sender), plain(r.affiliation),
        h("span", {}, highlight(snippet(r.body, p.q || ""), p.q || "")),
        r.record_class ? `${plain(r.record_class)}（${r.retain_until || ""}）` : "—"]), { className: "table disclosure-table" })
        : h("p", { class: "empty", text: t("disclosure.none") }));
    } catch (err) {
      result(out, err.userMessage, false);
    }
  };
  body.append(h("p", { class: "hint", text: t("disclosure.help") }),
    h("form", { class: "filters card", role: "search", "aria-label": t("disclosure.form"), on: { submit: (ev) => { ev.preventDefault(); search(); } } },
      field(q, "disclosure.text"), field(since, "disclosure.since"), field(until, "disclosure.until"),
      field(sender, "disclosure.sender"), field(affiliation, "disclosure.affiliation"),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", text: t("disclosure.search") }),
        wareki.el,
        h("button", { type: "button", class: "button secondary", text: t("disclosure.export"), on: { click: async () => {
          const p = params();
          if (!hasCriteria(p)) {
            result(out, t("disclosure.needCriteria"), false);
            return;
          }
          try {
            const name = await download(`/api/records/search/export${qs({ ...p, wareki: wareki.input.checked ? "1" : "" })}`,
              { fallbackName: "kakehashi.zip" });
            result(out, t("export.done", { name }));
          } catch (err) {
            result(out, err.userMessage, false);
          }
        } } }))),
    out, results);
}

