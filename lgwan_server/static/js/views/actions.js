// Actions on one message (the 「その他」 dialog): edit with history, delete, pin, 行政文書として保存,
// タスクにする, 確認必須 (ask, see who has / has not), and the records export of a room or thread.
import { del, get, getCsrf, patch, post, put } from "../api.js";
import { confirmDialog, openDialog } from "../dialog.js";
import { h, plain } from "../dom.js";
import { fullTime, jstDateToUtcIso } from "../format.js";
import { t } from "../i18n.js";
import { announce } from "../notify.js";
import { state } from "../state.js";
import { checkbox, download, field, result } from "../widgets.js";
import { roomMembers } from "./composer.js";

function personRow(card) {
  return h("li", { class: "person" },
    h("span", { class: "person-name", text: card.display_name }),
    h("span", { class: "person-detail", text: [card.department, card.rank].filter(Boolean).map(plain).join(" · ") }));
}

/** The 「その他」 dialog: every action this person may take on the message, as buttons. */
export function messageMenu(view) {
  const m = view.msg;
  const room = state.rooms.get(m.room_id) || {};
  const mine = m.sender.id === state.me.staff.id;
  const owner = room.role === "owner";
  const items = [];
  const add = (key, fn, danger = false) => items.push(h("li", {}, h("button", { type: "button",
    class: `button ${danger ? "danger-outline" : "secondary"} menu-item`, text: t(key), on: { click: () => {
      close();
      fn();
    } } })));
  if (!m.deleted) {
    if (mine) add("msg.edit", () => editDialog(view));
    if (m.edited_at) add("msg.history", () => showHistory(m));
    if (room.can_post !== false) add(m.pinned ? "msg.unpin" : "msg.pin", () => togglePin(view));
    if (!m.record) add("msg.markRecord", () => recordDialog(view));
    add("msg.makeTask", () => taskDialog(m));
    if (mine && !m.ack_requested) add("msg.requestAck", () => requestAck(view));
    if (mine && m.ack_requested) add("msg.ackStatus", () => showAcks(m));
    if (!m.thread_root_id && !view.inThread && m.reply_count) {
      add("msg.exportThread", () => exportDialog(room, { threadRootId: m.id }));
    }
    if (mine || owner) add("msg.delete", () => deleteMessage(view), true);
  }
  const { close } = openDialog({
    title: t("msg.menuTitle"),
    className: "menu-dialog",
    content: [h("p", { class: "dialog-context", text: plain(m.body).slice(0, 80) || t("msg.attachmentOnly") }),
      h("ul", { class: "menu-list" }, items)],
  });
  items[0]?.querySelector("button")?.focus();
}

function editDialog(view) {
  const m = view.msg;
  const input = h("textarea", { id: "edit-body", class: "input", rows: "5", maxlength: "10000" });
  input.value = m.body;
  const error = h("p", { class: "form-error", role: "alert" });
  const save = h("button", { type: "button", class: "button primary", text: t("common.save") });
  const { close } = openDialog({ title: t("msg.editTitle"), content: [field(input, "msg.editBody"), error],
    actions: [save], closeLabel: t("common.cancel") });
  input.focus();
  save.addEventListener("click", async () => {
    const body = input.value.trim();
    if (!body) {
      error.textContent = t("composer.empty");
      return;
    }
    try {
      const updated = await patch(`/api/messages/${m.id}`, { body });
      view.edit(updated.body, updated.edited_at);
      close();
      announce(t("msg.editDone"));
    } catch (err) {
      error.textContent = err.userMessage;
    }
  });
}

/** 編集履歴: every version, oldest first. */
export async function showHistory(m) {
  let versions = [];
  try {
    versions = (await get(`/api/messages/${m.id}/history`)).versions;
  } catch (err) {
    announce(err.userMessage, { assertive: true });
    return;
  }
  openDialog({
    title: t("msg.historyTitle"),
    className: "history-dialog",
    content: versions.length ? h("ol", { class: "history-list" }, versions.map((v) => h("li", { class: "history-item" },
      h("p", { class: "hist-meta", text: t("msg.version", { n: v.version, time: fullTime(v.created_at) }) }),
      h("p", { class: "msg-body", text: v.body }))))
      : h("p", { class: "empty", text: t("msg.noHistory") }),
  });
}

async function deleteMessage(view) {
  const ok = await confirmDialog({ title: t("msg.deleteConfirm"), message: t("msg.deleteExplain"),
    confirmLabel: t("msg.delete"), danger: true });
  if (!ok) return;
  try {
    await del(`/api/messages/${view.msg.id}`);
    view.markDeleted();
    announce(t("msg.deleteDone"));
  } catch (err) {
    view.showError(err.userMessage);
    view.el.focus();
  }
}

async function togglePin(view) {
  const m = view.msg;
  const pinned = !m.pinned;   // decided now: the live pin event may arrive before the answer
  try {
    if (pinned) await put(`/api/messages/${m.id}/pin`, {});
    else await del(`/api/messages/${m.id}/pin`);
    view.patch({ pinned });
    announce(t(pinned ? "msg.pinnedDone" : "msg.unpinnedDone"));
  } catch (err) {
    view.showError(err.userMessage);
  }
}

async function requestAck(view) {
  try {
    await post(`/api/messages/${view.msg.id}/ack-request`, {});
    view.patch({ ack_requested: true });
    announce(t("msg.requestAckDone"));
  } catch (err) {
    view.showError(err.userMessage);
  }
}

/** 確認状況: who has pressed 確認 and who has not, by department; the sender can re-notify. */
export async function showAcks(m) {
  let data;
  try {
    data = await get(`/api/messages/${m.id}/acks`);
  } catch (err) {
    announce(err.userMessage, { assertive: true });
    return;
  }
  const out = h("p", { role: "status" });
  const remind = m.sender.id === state.me.staff.id && data.pending_count ? h("button", { type: "button",
    class: "button primary", text: t("ack.remind"), on: { click: async () => {
      try {
        const res = await post(`/api/messages/${m.id}/ack-remind`, {});
        result(out, t("ack.reminded", { count: res.reminded }));
      } catch (err) {
        result(out, err.userMessage, false);
      }
    } } }) : null;
  openDialog({
    title: t("ack.title"),
    className: "acks-dialog",
    content: [
      h("p", { class: "dialog-context", text: plain(m.body).slice(0, 80) }),
      h("p", { class: "ack-summary", text: t("ack.summary", { acked: data.acked_count, pending: data.pending_count }) }),
      h("div", { class: "table-wrap" }, h("table", { class: "table" },
        h("caption", { text: t("ack.byDepartment") }),
        h("thead", {}, h("tr", {}, ["ack.col.department", "ack.col.acked", "ack.col.members"].map((k) =>
          h("th", { scope: "col", text: t(k) })))),
        h("tbody", {}, data.departments.map((d) => h("tr", {}, h("th", { scope: "row", text: d.department }),
          h("td", { class: "num", text: String(d.acked) }), h("td", { class: "num", text: String(d.members) })))))),
      h("div", { class: "receipt-columns" },
        h("section", { "aria-labelledby": "acks-done" },
          h("h3", { id: "acks-done", text: t("ack.acked", { count: data.acked_count }) }),
          data.acked.length ? h("ul", { class: "people" }, data.acked.map(personRow))
            : h("p", { class: "empty", text: t("receipts.none") })),
        h("section", { "aria-labelledby": "acks-pending" },
          h("h3", { id: "acks-pending", text: t("ack.pending", { count: data.pending_count }) }),
          data.pending.length ? h("ul", { class: "people" }, data.pending.map(personRow))
            : h("p", { class: "empty", text: t("receipts.none") }))),
      out,
    ],
    actions: remind ? [remind] : [],
  });
}

let classesCache = null;
export async function retentionClasses(fresh = false) {
  if (!classesCache || fresh) classesCache = get("/api/records/classes").then((d) => d.classes);
  try {
    return await classesCache;
  } catch (err) {
    classesCache = null;
    throw err;
  }
}

/** 行政文書として保存: retention class, 件名, and (for a thread root) message or whole thread. */
async function recordDialog(view) {
  const m = view.msg;
  let classes;
  try {
    classes = (await retentionClasses(true)).filter((c) => c.active);
  } catch (err) {
    view.showError(err.userMessage);
    return;
  }
  const klass = h("select", { id: "rec-class", class: "input", required: true },
    classes.map((c) => h("option", { value: String(c.id), text: c.label, selected: c.years === 1 })));
  const title = h("input", { id: "rec-title", class: "input", maxlength: "200" });
  const isRoot = !m.thread_root_id;
  const scopeRadio = (value, key) => h("div", { class: "radio" },
    h("input", { type: "radio", name: "rec-scope", id: `rec-scope-${value}`, value, checked: value === "message" }),
    h("label", { for: `rec-scope-${value}`, text: t(key) }));
  const error = h("p", { class: "form-error", role: "alert" });
  const save = h("button", { type: "button", class: "button primary", text: t("records.markSubmit") });
  const { close, dialog } = openDialog({
    title: t("records.markTitle"),
    className: "record-dialog",
    content: [
      h("p", { class: "hint", text: t("records.markHelp") }),
      h("p", { class: "dialog-context", text: plain(m.body).slice(0, 80) }),
      field(klass, "records.class"),
      field(title, "records.titleField", { hint: "records.titleHint" }),
      isRoot ? h("fieldset", { class: "field" }, h("legend", { text: t("records.scope") }),
        scopeRadio("message", "records.scope.message"), scopeRadio("thread", "records.scope.thread")) : null,
      error,
    ],
    actions: [save],
    closeLabel: t("common.cancel"),
  });
  klass.focus();
  save.addEventListener("click", async () => {
    const scope = dialog.querySelector("input[name=rec-scope]:checked")?.value || "message";
    try {
      const mark = await post(`/api/messages/${m.id}/record`, { class_id: Number(klass.value), scope,
        title: title.value.trim() });
      const label = classes.find((c) => c.id === mark.class_id)?.label || "";
      view.patch({ record: { mark_id: mark.id, scope: mark.scope, title: mark.title, retain_until: mark.retain_until,
        class_label: label } });
      close();
      announce(t("records.markDone", { label, until: mark.retain_until }));
    } catch (err) {
      error.textContent = err.userMessage;
    }
  });
}

/** タスクにする: title (from the message), assignees from the room, due date. */
async function taskDialog(m) {
  let members = [];
  try {
    members = await roomMembers(m.room_id);
  } catch (err) {
    announce(err.userMessage, { assertive: true });
    return;
  }
  const title = h("input", { id: "task-title", class: "input", maxlength: "200", required: true });
  title.value = plain(m.body).replace(/\s+/g, " ").slice(0, 100);
  const due = h("input", { id: "task-due", type: "date", class: "input" });
  const boxes = members.filter((p) => p.status !== "retired").map((p) => {
    const id = `task-as-${p.id}`;
    return h("li", { class: "check" }, h("input", { type: "checkbox", id, value: String(p.id) }),
      h("label", { for: id, text: `${plain(p.display_name)}（${plain(p.department || "")}）` }));
  });
  const error = h("p", { class: "form-error", role: "alert" });
  const save = h("button", { type: "button", class: "button primary", text: t("task.create") });
  const { close, dialog } = openDialog({
    title: t("task.fromMessage"),
    className: "task-dialog",
    content: [field(title, "task.titleField"), field(due, "task.due"),
      h("fieldset", { class: "field picker-box" }, h("legend", { text: t("task.assignees") }),
        h("ul", { class: "check-list" }, boxes)), error],
    actions: [save],
    closeLabel: t("common.cancel"),
  });
  title.focus();
  save.addEventListener("click", async () => {
    const ids = [...dialog.querySelectorAll(".check-list input:checked")].map((i) => Number(i.value));
    if (!title.value.trim()) {
      error.textContent = t("task.needTitle");
      return;
    }
    const body = { title: title.value.trim(), message_id: m.id, assignee_ids: ids };
    if (due.value) body.due_date = due.value;
    try {
      await post("/api/tasks", body);
      close();
      announce(t("task.created"));
    } catch (err) {
      error.textContent = err.userMessage;
    }
  });
}

/** Export a room or one thread: period, 行政文書のみ / すべて, 和暦; downloads the signed zip. */
export function exportDialog(room, { threadRootId } = {}) {
  const since = h("input", { id: "exp-since", type: "date", class: "input" });
  const until = h("input", { id: "exp-until", type: "date", class: "input" });
  const radio = (value, key) => h("div", { class: "radio" },
    h("input", { type: "radio", name: "exp-scope", id: `exp-${value}`, value, checked: value === "marked" }),
    h("label", { for: `exp-${value}`, text: t(key) }));
  const wareki = checkbox("export.wareki", { id: "exp-wareki" });
  const out = h("p", { role: "status" });
  const go = h("button", { type: "button", class: "button primary", text: t("export.submit") });
  const { dialog } = openDialog({
    title: threadRootId ? t("export.threadTitle") : t("export.roomTitle", { room: plain(room.name) }),
    className: "export-dialog",
    content: [
      h("p", { class: "hint", text: t("export.help") }),
      threadRootId ? null : h("div", { class: "filters" }, field(since, "export.since"), field(until, "export.until")),
      h("fieldset", { class: "field" }, h("legend", { text: t("export.scope") }),
        radio("marked", "export.markedOnly"), radio("all", "export.all")),
      wareki.el, out,
    ],
    actions: [go],
  });
  go.addEventListener("click", async () => {
    const body = { room_id: room.id, marked_only: dialog.querySelector("input[name=exp-scope]:checked")?.value
      !== "all", wareki: wareki.input.checked };
    if (threadRootId) body.thread_root_id = threadRootId;
    if (since.value) body.since = jstDateToUtcIso(since.value);
    if (until.value) body.until = jstDateToUtcIso(until.value, 1);
    go.disabled = true;
    result(out, t("export.working"));
    try {
      const name = await download("/api/records/exports", { method: "POST", json: body, csrf: getCsrf(),
        fallbackName: "kakehashi.zip" });
      result(out, t("export.done", { name }));
    } catch (err) {
      result(out, err.userMessage, false);
    } finally {
      go.disabled = false;
    }
  });
}
