// Room tools: create a room (project / お知らせ) with a member picker; members (add, remove, role,
// 文書管理者) for owners; the pinned list; polls (create, vote, results by department); the room's tasks.
import { del, get, post, put } from "../api.js";
import { confirmDialog, openDialog } from "../dialog.js";
import { clear, h, plain } from "../dom.js";
import { fullTime, timeElement } from "../format.js";
import { t } from "../i18n.js";
import { announce } from "../notify.js";
import { state } from "../state.js";
import { checkbox, field, result, staffPicker } from "../widgets.js";
import { roomMembers } from "./composer.js";
import { roomTitle } from "./sidebar.js";

/** 「ルームを作成」: kind, name, topic, members. onCreated(room) opens it. */
export function createRoomDialog({ onCreated }) {
  const name = h("input", { id: "new-room-name", class: "input", maxlength: "100", required: true });
  const topic = h("textarea", { id: "new-room-topic", class: "input", rows: "2", maxlength: "1000" });
  const kindRadio = (value) => h("div", { class: "radio" },
    h("input", { type: "radio", name: "new-room-kind", id: `new-room-${value}`, value, checked: value === "project" }),
    h("label", { for: `new-room-${value}`, text: t(`kind.${value}`) }));
  const picker = staffPicker({ labelKey: "rooms.new.members", exclude: new Set([state.me.staff.id]) });
  const error = h("p", { class: "form-error", role: "alert" });
  const create = h("button", { type: "button", class: "button primary", text: t("rooms.new.submit") });
  const { close, dialog } = openDialog({
    title: t("rooms.new.title"),
    className: "wide-dialog create-room-dialog",
    content: [
      h("fieldset", { class: "field" }, h("legend", { text: t("rooms.new.kind") }), kindRadio("project"),
        kindRadio("announcement"), h("p", { class: "hint", text: t("rooms.new.kindHint") })),
      field(name, "rooms.new.name"), field(topic, "rooms.new.topic"), picker.el, error],
    actions: [create],
    closeLabel: t("common.cancel"),
  });
  name.focus();
  create.addEventListener("click", async () => {
    if (!name.value.trim()) {
      error.textContent = t("rooms.new.needName");
      name.focus();
      return;
    }
    const kind = dialog.querySelector("input[name=new-room-kind]:checked")?.value || "project";
    try {
      const room = await post("/api/rooms", { kind, name: name.value.trim(), topic: topic.value.trim(),
        member_ids: picker.value() });
      close();
      announce(t("rooms.new.done", { room: plain(room.name) }));
      onCreated(room);
    } catch (err) {
      error.textContent = err.userMessage;
    }
  });
}

const ROLES = ["owner", "member", "readonly"];

/** Members of a room; owners add, remove, change roles and name the 文書管理者. */
export async function membersDialog(room) {
  const owner = room.role === "owner";
  const managed = room.kind === "department" || room.kind === "rank";
  const out = h("p", { role: "status" });
  const listBox = h("div", { class: "members-box" });
  let members = [];
  const load = async () => {
    state.memberCache.delete(room.id);
    members = await roomMembers(room.id);
    clear(listBox).append(h("div", { class: "table-wrap" }, h("table", { class: "table" },
      h("caption", { text: t("members.caption", { count: members.length }) }),
      h("thead", {}, h("tr", {}, ["members.col.name", "members.col.department", "members.col.role",
        owner ? "members.col.actions" : null].filter(Boolean).map((k) => h("th", { scope: "col", text: t(k) })))),
      h("tbody", {}, members.map((m) => memberRow(m))))));
  };
  const memberRow = (m) => {
    const name = plain(m.display_name);
    let roleCell = t(`members.role.${m.role}`);
    if (owner && !managed) {
      const select = h("select", { class: "input input-small", "aria-label": t("members.roleFor", { name }) },
        ROLES.map((r) => h("option", { value: r, selected: r === m.role, text: t(`members.role.${r}`) })));
      select.addEventListener("change", async () => {
        try {
          await put(`/api/rooms/${room.id}/members/${m.id}/role`, { role: select.value });
          m.role = select.value;
          result(out, t("members.roleDone", { name, role: t(`members.role.${select.value}`) }));
        } catch (err) {
          select.value = m.role;
          result(out, err.userMessage, false);
        }
      });
      roleCell = select;
    }
    const actions = owner ? h("td", {}, h("div", { class: "row-actions" },
      h("button", { type: "button", class: "button secondary small", text: t("members.officer"),
        "aria-label": t("members.officerLabel", { name }), on: { click: async () => {
          try {
            await put(`/api/rooms/${room.id}/records-officer`, { staff_id: m.id });
            result(out, t("members.officerDone", { name }));
          } catch (err) {
            result(out, err.userMessage, false);
          }
        } } }),
      managed || m.id === state.me.staff.id ? null : h("button", { type: "button", class: "button danger-outline small",
        text: t("members.remove"), "aria-label": t("members.removeLabel", { name }), on: { click: async () => {
          const ok = await confirmDialog({ title: t("members.removeConfirm", { name }), message: t("members.removeExplain"),
            confirmLabel: t("members.remove"), danger: true });
          if (!ok) return;
          try {
            await del(`/api/rooms/${room.id}/members/${m.id}`);
            result(out, t("members.removeDone", { name }));
            await load();
          } catch (err) {
            result(out, err.userMessage, false);
          }
        } } }))) : null;
    return h("tr", { dataset: { staffId: String(m.id) } }, h("th", { scope: "row", text: m.display_name }),
      h("td", { text: m.department || "" }), h("td", {}, roleCell), actions);
  };
  let picker = null;
  const addButton = h("button", { type: "button", class: "button primary", text: t("members.addSubmit") });
  if (owner && !managed) {
    picker = staffPicker({ labelKey: "members.add", exclude: new Set() });
    addButton.addEventListener("click", async () => {
      const ids = picker.value().filter((id) => !members.some((m) => m.id === id));
      if (!ids.length) {
        result(out, t("members.addNone"), false);
        return;
      }
      try {
        const res = await post(`/api/rooms/${room.id}/members`, { staff_ids: ids });
        result(out, t("members.addDone", { count: res.added }));
        picker.clear();
        await load();
        room.member_count = members.length;
      } catch (err) {
        result(out, err.userMessage, false);
      }
    });
  }
  await load();
  openDialog({
    title: t("members.title", { room: roomTitle(room) }),
    className: "wide-dialog members-dialog",
    content: [managed ? h("p", { class: "hint", text: t("members.managed") }) : null, out, listBox,
      picker ? h("section", { class: "card", "aria-labelledby": "members-add-h" },
        h("h3", { id: "members-add-h", text: t("members.addHeading") }), picker.el, addButton) : null],
  });
}

/** ピン留め: the room's pinned messages, each can be shown in the timeline. */
export async function pinsPanel(room, { reveal }) {
  const data = await get(`/api/rooms/${room.id}/pins`);
  if (!data.messages.length) return h("p", { class: "empty", role: "status", text: t("pins.none") });
  return h("div", {}, h("p", { class: "result-count", role: "status", text: t("pins.count", { count: data.messages.length }) }),
    h("ol", { class: "search-results" }, data.messages.map((m) => h("li", { class: "search-hit" },
      h("p", { class: "hit-meta" }, h("span", { class: "hit-room", text: m.sender.display_name }), timeElement(m.created_at)),
      h("p", { class: "hit-body", text: plain(m.body).slice(0, 200) }),
      h("button", { type: "button", class: "button link small", text: t("search.open"),
        "aria-label": t("pins.openLabel", { time: fullTime(m.created_at) }), on: { click: () => reveal(m) } })))));
}

// --- polls --------------------------------------------------------------------------------------

function pollForm(room, onCreated) {
  const question = h("input", { id: "poll-question", class: "input", maxlength: "500" });
  const options = h("textarea", { id: "poll-options", class: "input", rows: "4" });
  const multiple = checkbox("polls.multiple", { id: "poll-multiple" });
  const anonymous = checkbox("polls.anonymous", { id: "poll-anonymous" });
  const out = h("p", { role: "status" });
  return h("form", { class: "form card poll-form", "aria-labelledby": "poll-new-h", on: { submit: async (ev) => {
    ev.preventDefault();
    const opts = options.value.split("\n").map((s) => s.trim()).filter(Boolean);
    if (!question.value.trim() || opts.length < 2) {
      result(out, t("polls.needOptions"), false);
      return;
    }
    try {
      const poll = await post(`/api/rooms/${room.id}/polls`, { question: question.value.trim(), options: opts,
        multiple: multiple.input.checked, anonymous: anonymous.input.checked });
      question.value = "";
      options.value = "";
      result(out, t("polls.created"));
      onCreated(poll);
    } catch (err) {
      result(out, err.userMessage, false);
    }
  } } },
  h("h3", { id: "poll-new-h", text: t("polls.new") }),
  field(question, "polls.question"), field(options, "polls.options", { hint: "polls.optionsHint" }),
  h("div", { class: "form-actions" }, multiple.el, anonymous.el),
  h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button primary", text: t("polls.create") })),
  out);
}

/** One poll: vote (radio or checkboxes) and results overall, by department, and by name unless anonymous. */
export async function pollCard(pollId) {
  const box = h("section", { class: "card poll-card", "aria-labelledby": `poll-${pollId}-q`, dataset: { pollId: String(pollId) } });
  const draw = async () => {
    const data = await get(`/api/polls/${pollId}`);
    const p = data.poll;
    const closed = p.closes_at && new Date(p.closes_at) <= new Date();
    const type = p.multiple ? "checkbox" : "radio";
    const out = h("p", { role: "status" });
    const choices = h("fieldset", { class: "field" }, h("legend", { text: t("polls.yourChoice") }),
      p.options.map((o, i) => {
        const id = `poll-${pollId}-o${i}`;
        return h("div", { class: type === "radio" ? "radio" : "check" },
          h("input", { type, name: `poll-${pollId}`, id, value: String(i), checked: data.my_choices.includes(i),
            disabled: closed }), h("label", { for: id, text: o }));
      }));
    const total = Math.max(1, data.voters);
    clear(box).append(
      h("h3", { id: `poll-${pollId}-q`, text: p.question }),
      h("p", { class: "hint", text: [p.anonymous ? t("polls.isAnonymous") : t("polls.isNamed"),
        p.multiple ? t("polls.isMultiple") : null, closed ? t("polls.closed") : null].filter(Boolean).join(t("common.sep")) }),
      closed ? null : h("form", { class: "form", on: { submit: async (ev) => {
        ev.preventDefault();
        const picked = [...box.querySelectorAll(`input[name="poll-${pollId}"]:checked`)].map((i) => Number(i.value));
        if (!picked.length) {
          result(out, t("polls.pickOne"), false);
          return;
        }
        try {
          await post(`/api/polls/${pollId}/vote`, { options: picked });
          announce(t("polls.voted"));
          await draw();
          box.querySelector("h3")?.focus();
        } catch (err) {
          result(out, err.userMessage, false);
        }
      } } }, choices, h("button", { type: "submit", class: "button primary small", text: t("polls.vote") }), out),
      h("div", { class: "table-wrap" }, h("table", { class: "table poll-results" },
        h("caption", { text: t("polls.results", { count: data.voters }) }),
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: t("polls.col.option") }),
          h("th", { scope: "col", text: t("polls.col.count") }), h("th", { scope: "col", text: t("polls.col.share") }))),
        h("tbody", {}, p.options.map((o, i) => h("tr", {}, h("th", { scope: "row", text: o }),
          h("td", { class: "num", text: String(data.counts[i]) }),
          h("td", { class: "num", text: `${Math.round((100 * data.counts[i]) / total)}%` })))))),
      data.by_department.length ? h("div", { class: "table-wrap" }, h("table", { class: "table poll-by-dept" },
        h("caption", { text: t("polls.byDepartment") }),
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: t("polls.col.department") }),
          p.options.map((o) => h("th", { scope: "col", text: o })))),
        h("tbody", {}, data.by_department.map((d) => h("tr", {}, h("th", { scope: "row", text: d.department }),
          d.counts.map((c) => h("td", { class: "num", text: String(c) }))))))) : null,
      data.choices ? h("dl", { class: "poll-voters" }, data.choices.map((c) => [
        h("dt", { text: p.options[c.option] }),
        h("dd", { text: c.voters.map((v) => `${plain(v.display_name)}（${plain(v.department || "")}）`).join("、") })]))
        : null,
      p.created_by === state.me.staff.id && !closed ? h("button", { type: "button", class: "button secondary small",
        text: t("polls.close"), on: { click: async () => {
          try {
            await post(`/api/polls/${pollId}/close`, {});
            await draw();
          } catch (err) {
            announce(err.userMessage, { assertive: true });
          }
        } } }) : null);
    box.querySelector("h3").setAttribute("tabindex", "-1");
  };
  await draw();
  box.refresh = draw;
  return box;
}

/** The polls panel of a room: a form to ask, and every poll with its results. */
export async function pollsPanel(room) {
  const list = h("div", { class: "poll-list" });
  const data = await get(`/api/rooms/${room.id}/polls`);
  const cards = await Promise.all(data.polls.map((p) => pollCard(p.id)));
  list.append(...cards);
  if (!cards.length) list.append(h("p", { class: "empty", text: t("polls.none") }));
  const panel = h("div", { class: "panel-pad polls-panel" },
    room.can_post === false ? null : pollForm(room, async (poll) => {
      list.querySelector(".empty")?.remove();
      list.prepend(await pollCard(poll.id));
    }), list);
  panel.refreshPoll = (pollId) => list.querySelector(`[data-poll-id="${pollId}"]`)?.refresh?.();
  panel.roomId = room.id;
  return panel;
}

/** Tasks made from this room's messages. */
export async function roomTasksPanel(room) {
  const data = await get(`/api/rooms/${room.id}/tasks`);
  if (!data.tasks.length) return h("p", { class: "empty", role: "status", text: t("task.noneInRoom") });
  return h("ul", { class: "task-list panel-pad" }, data.tasks.map((task) => h("li", { class: "task-item" },
    h("p", { class: "task-title", text: task.title }),
    h("p", { class: "hint", text: [t(`task.status.${task.status}`), task.due_date ? t("task.dueOn", { date: task.due_date }) : null]
      .filter(Boolean).join(t("common.sep")) }))));
}
