// Banners above the layout for what must not be missed: 安否確認 (answer in one tap, details optional)
// and 一斉送信 (確認 / 既読). Other personal events (お知らせ, tasks, reminders) are announced, and
// every event is passed on to the open 業務 screen as a "kk-event" so dashboards refresh live.
import { get, post } from "../api.js";
import { clear, h, plain, uid } from "../dom.js";
import { fullTime } from "../format.js";
import { t } from "../i18n.js";
import { announce, desktopNotify } from "../notify.js";
import { state } from "../state.js";

export const CONDITIONS = ["safe", "minor", "serious", "need_help"];
let box = null;
let nav = null;
const shown = new Map();   // "safety-<id>" / "broadcast-<id>" -> banner element

function dismiss(key) {
  const el = shown.get(key);
  shown.delete(key);
  if (!el) return;
  const hadFocus = el.contains(document.activeElement);
  el.remove();
  if (hadFocus) (document.getElementById("main") || document.body).focus();
}

function banner(key, className, titleText, children) {
  const titleId = uid("alert-title");
  const old = shown.get(key);
  const el = h("section", { class: `alert-banner ${className}`, "aria-labelledby": titleId, dataset: { key } },
    h("h2", { id: titleId, class: "alert-title", tabindex: "-1", text: titleText }), children);
  if (old) old.replaceWith(el);
  else box.prepend(el);
  shown.set(key, el);
  return el;
}

/** The answer form: one tap on a condition answers; 参集可否・到着見込み・現在地・連絡事項 are optional. */
export function safetyAnswerForm(check, { onAnswered, idPrefix = "sa" } = {}) {
  const qs = new Set(check.questions || ["condition"]);
  const prefix = `${idPrefix}-${check.id}`;
  const extra = [];
  const attend = h("select", { id: `${prefix}-attend`, class: "input input-small" },
    ["", "yes", "no", "unknown"].map((v) => h("option", { value: v, text: v ? t(`safety.attend.${v}`) : t("safety.noAnswer") })));
  const eta = h("input", { id: `${prefix}-eta`, type: "number", min: "0", max: "10080", step: "5", class: "input input-small",
    inputmode: "numeric" });
  const location = h("input", { id: `${prefix}-location`, class: "input", maxlength: "200", autocomplete: "off" });
  const note = h("textarea", { id: `${prefix}-note`, class: "input", rows: "2", maxlength: "1000" });
  const lab = (control, key) => h("div", { class: "field" }, h("label", { for: control.id, text: t(key) }), control);
  if (qs.has("attend")) extra.push(lab(attend, "safety.q.attend"));
  if (qs.has("eta")) extra.push(lab(eta, "safety.q.eta"));
  if (qs.has("location")) extra.push(lab(location, "safety.q.location"));
  if (qs.has("note")) extra.push(lab(note, "safety.q.note"));
  const out = h("p", { class: "safety-result", role: "status" });
  const send = async (condition) => {
    const body = { condition };
    if (attend.value) body.attend = attend.value;
    if (eta.value !== "" && Number.isFinite(Number(eta.value))) body.eta_minutes = Math.round(Number(eta.value));
    if (location.value.trim()) body.location = location.value.trim();
    if (note.value.trim()) body.note = note.value.trim();
    try {
      await post(`/api/safety/${check.id}/answer`, body);
      out.textContent = t("safety.answered", { condition: t(`safety.condition.${condition}`) });
      out.className = "safety-result notice";
      announce(out.textContent);
      onAnswered?.(condition);
    } catch (err) {
      out.textContent = err.userMessage;
      out.className = "safety-result form-error";
      announce(err.userMessage, { assertive: true });
    }
  };
  const buttons = h("div", { class: "safety-buttons", role: "group", "aria-label": t("safety.condition") },
    CONDITIONS.map((c) => h("button", { type: "button", class: `button safety-${c}`, dataset: { condition: c },
      text: t(`safety.condition.${c}`), on: { click: () => send(c) } })));
  const details = extra.length ? h("details", { class: "safety-details" },
    h("summary", { text: t("safety.details") }), h("p", { class: "hint", text: t("safety.detailsHint") }),
    h("div", { class: "filters" }, extra)) : null;
  return h("div", { class: "safety-form" }, h("p", { class: "safety-ask", text: t("safety.ask") }), buttons, details, out);
}

function showSafety(check, reminder = false) {
  const key = `safety-${check.id}`;
  const el = banner(key, "safety-banner", t(reminder ? "safety.bannerReminder" : "safety.banner", { title: plain(check.title) }), [
    check.message ? h("p", { class: "alert-body", text: check.message }) : null,
    safetyAnswerForm(check, { idPrefix: "banner", onAnswered: () => {
      el.querySelector(".alert-close")?.removeAttribute("hidden");
    } }),
    h("div", { class: "alert-actions" },
      h("button", { type: "button", class: "button secondary small alert-close", hidden: true, text: t("safety.done"),
        on: { click: () => dismiss(key) } })),
  ]);
  announce(t("safety.arrived", { title: plain(check.title) }), { assertive: true });
  desktopNotify(t("safety.notifyTitle"), plain(check.title), key, () => el.querySelector("h2")?.focus());
}

function showBroadcast(b, reminder = false) {
  const key = `broadcast-${b.id}`;
  const out = h("p", { role: "status" });
  const mark = async (ack) => {
    try {
      await post(`/api/broadcasts/${b.id}/${ack ? "ack" : "read"}`, {});
      announce(t(ack ? "broadcast.ackDone" : "broadcast.readDone"));
      dismiss(key);
      window.dispatchEvent(new CustomEvent("kk-event", { detail: { type: "local.broadcastDone", data: { id: b.id } } }));
    } catch (err) {
      out.textContent = err.userMessage;
      out.className = "form-error";
    }
  };
  banner(key, `broadcast-banner${b.important ? " important" : ""}`,
    t(reminder ? "broadcast.bannerReminder" : "broadcast.banner", { title: plain(b.title) }), [
      h("p", { class: "alert-meta", text: t("broadcast.from", { affiliation: plain(b.sender_affiliation || ""),
        time: fullTime(b.created_at) }) }),
      h("p", { class: "alert-body", text: b.body }),
      h("div", { class: "alert-actions" },
        b.ack_required ? h("button", { type: "button", class: "button primary broadcast-ack", text: t("broadcast.ack"),
          on: { click: () => mark(true) } })
          : h("button", { type: "button", class: "button primary", text: t("broadcast.markRead"), on: { click: () => mark(false) } }),
        h("a", { href: "#/work/inbox", class: "button secondary small", text: t("broadcast.openInbox") })),
      out]);
  announce(t("broadcast.arrived", { title: plain(b.title) }), { assertive: true });
  desktopNotify(t("broadcast.notifyTitle"), plain(b.title), key, null);
}

function noticeBanner(n) {
  const key = `notice-${n.id}`;
  banner(key, "notice-banner", t("notice.banner", { title: plain(n.title) }), [
    h("div", { class: "alert-actions" },
      h("a", { href: `#/work/notices/${n.id}`, class: "button primary small", text: t("notice.open"),
        on: { click: () => dismiss(key) } }),
      h("button", { type: "button", class: "button secondary small", text: t("common.close"),
        on: { click: () => dismiss(key) } }))]);
  announce(t("notice.arrived", { title: plain(n.title) }));
}

export const alerts = {
  mount(el) {
    box = el;
    for (const banner of shown.values()) box.append(banner);
  },

  async start(el, { navigate }) {
    box = el;
    nav = navigate;
    try {
      const mine = await get("/api/safety");
      for (const c of mine.checks.slice().reverse()) if (!c.answered && !c.closed_at) showSafety(c);
      const inbox = await get("/api/broadcasts");
      for (const b of inbox.broadcasts.slice(0, 3).reverse()) {
        if ((b.ack_required && !b.acked_at) || !b.read_at) showBroadcast(b);
      }
    } catch {
      // the banners come with the next event anyway
    }
  },

  stop() {
    shown.clear();
    if (box) clear(box);
    box = null;
  },

  onEvent(type, d) {
    if (!box) return;
    const me = state.me?.staff?.id;
    switch (type) {
      case "safety.request": showSafety(d); break;
      case "safety.reminder": showSafety(d, true); break;
      case "broadcast.new": showBroadcast(d); break;
      case "broadcast.reminder": showBroadcast(d, true); break;
      case "notice.new": if (d.author_id !== me) noticeBanner(d); break;
      case "task.new":
        if ((d.assignees || []).includes(me) && d.created_by !== me) announce(t("task.assigned", { title: plain(d.title) }));
        break;
      case "task.reminder": announce(t("task.reminded", { title: plain(d.title) })); break;
      case "ack.reminder": announce(t("ack.reminderArrived")); break;
      case "records.notice": announce(t("records.noticeArrived", { label: plain(d.class || "") })); break;
      case "device.request": announce(t("phones.deviceRequested")); break;
      default: break;
    }
    window.dispatchEvent(new CustomEvent("kk-event", { detail: { type, data: d } }));
    void nav;
  },
};
