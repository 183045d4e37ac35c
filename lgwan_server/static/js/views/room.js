// A room: header, the timeline (newest at the bottom, older pages on demand), and the composer.
import { get, post } from "../api.js";
import { h, plain } from "../dom.js";
import { t } from "../i18n.js";
import { announce } from "../notify.js";
import { state } from "../state.js";
import { Composer } from "./composer.js";
import { MessageView } from "./message.js";
import { exportDialog } from "./actions.js";
import { guestsPanel } from "./guests.js";
import { membersDialog, pinsPanel, pollsPanel, roomTasksPanel } from "./roomtools.js";
import { roomTitle } from "./sidebar.js";

const PAGE = 50;

export class RoomView {
  /** hooks: {openThread, openReceipts, openProfile, roomRead(roomId)} */
  constructor(room, hooks) {
    this.room = room;
    this.hooks = hooks;
    this.views = new Map();       // message id -> MessageView (top-level messages)
    this.oldestSeq = null;
    this.hasMore = true;
    this.loadingOlder = false;
    this.readTimer = null;
    this.build();
  }

  build() {
    const room = this.room;
    this.list = h("ol", { class: "timeline-list" });
    this.olderButton = h("button", { type: "button", class: "button secondary small", text: t("room.loadOlder"),
      on: { click: () => this.loadOlder(true) } });
    this.olderBox = h("div", { class: "older" }, this.olderButton);
    this.timeline = h("section", { class: "timeline", "aria-label": t("room.timeline"), tabindex: "0" },
      this.olderBox, this.list);
    this.composer = new Composer({ roomId: room.id, canPost: room.can_post !== false,
      label: t("composer.label", { room: roomTitle(room) }), onSent: (msg) => this.addOwn(msg) });
    this.dropHint = h("div", { class: "drop-hint", hidden: true, "aria-hidden": "true", text: t("composer.dropHere") });
    this.el = h("div", { class: "room-view" },
      h("header", { class: "room-header" },
        h("h1", { class: "room-title", id: "room-title" }, h("span", { text: roomTitle(room) }),
          h("span", { class: "room-kind", text: t(`kind.${room.kind}`) })),
        room.topic ? h("p", { class: "room-topic", text: room.topic }) : null,
        h("p", { class: "room-meta" },
          h("span", { text: t("room.members", { count: room.member_count ?? "-" }) }),
          room.crossing_policy ? h("span", { class: `crossing crossing-${room.crossing_policy}`,
            text: t(`crossing.${room.crossing_policy}`) }) : null),
        this.toolbar()),
      this.timeline, this.dropHint, this.composer.el);
    // Drag and drop anywhere on the room attaches the file to the composer.
    let depth = 0;
    this.el.addEventListener("dragenter", (ev) => {
      if (!ev.dataTransfer?.types?.includes("Files")) return;
      depth += 1;
      this.dropHint.hidden = false;
    });
    this.el.addEventListener("dragover", (ev) => {
      if (ev.dataTransfer?.types?.includes("Files")) ev.preventDefault();
    });
    this.el.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) this.dropHint.hidden = true;
    });
    this.el.addEventListener("drop", (ev) => {
      const file = ev.dataTransfer?.files?.[0];
      depth = 0;
      this.dropHint.hidden = true;
      if (!file) return;
      ev.preventDefault();
      this.composer.setFile(file);
      this.composer.focus();
    });
    // Older history loads when the top comes into view (and by the button, for keyboards).
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && this.loaded) this.loadOlder(false);
    }, { root: this.timeline });
    this.observer.observe(this.olderBox);
    // Stay pinned to the newest message while it grows (stamps, thread counts, images loading).
    this.stick = true;
    this.timeline.addEventListener("scroll", () => { this.stick = this.nearBottom(); }, { passive: true });
    this.resizer = new ResizeObserver(() => { if (this.stick) this.scrollToBottom(); });
    this.resizer.observe(this.list);
  }

  /** メンバー・ピン留め・アンケート・タスク・ゲスト・書き出し. */
  toolbar() {
    const room = this.room;
    const tool = (key, fn, popup = "dialog") => h("button", { type: "button", class: "button secondary small",
      "aria-haspopup": popup === "dialog" ? "dialog" : null, text: t(key), on: { click: fn } });
    const panel = (titleKey, make) => () => this.hooks.openPanel(t(titleKey, { room: roomTitle(room) }), make);
    return h("div", { class: "room-tools", role: "group", "aria-label": t("room.tools") },
      tool("room.membersButton", () => membersDialog(room).catch((err) => announce(err.userMessage, { assertive: true }))),
      tool("room.pins", panel("pins.title", () => pinsPanel(room, { reveal: (m) => this.reveal(m.id, m.seq) })), "panel"),
      tool("room.polls", panel("polls.title", () => pollsPanel(room)), "panel"),
      tool("room.tasks", panel("task.roomTitle", () => roomTasksPanel(room)), "panel"),
      // 外部ゲスト (issue 5): only rooms an admin opened to guests have any.
      room.crossing_policy === "guests" ? tool("room.guests", panel("guests.title", () => guestsPanel(room)), "panel") : null,
      tool("room.export", () => exportDialog(room)));
  }

  destroy() {
    this.observer.disconnect();
    this.resizer.disconnect();
    clearTimeout(this.readTimer);
  }

  async load() {
    const [detail, data] = await Promise.all([
      get(`/api/rooms/${this.room.id}`),
      get(`/api/rooms/${this.room.id}/messages?limit=${PAGE}`),
    ]);
    Object.assign(this.room, { can_post: detail.can_post, member_count: detail.member_count });
    if (!detail.can_post) {
      const fresh = new Composer({ roomId: this.room.id, canPost: false, label: this.composer.opts.label });
      this.composer.el.replaceWith(fresh.el);
      this.composer = fresh;
    }
    this.append(data.messages, false);
    this.hasMore = data.messages.length === PAGE;
    this.updateOlder();
    this.loaded = true;
    this.scrollToBottom();
    this.markRead();
  }

  updateOlder() {
    this.olderButton.hidden = !this.hasMore;
    this.olderBox.classList.toggle("start", !this.hasMore);
    this.olderBox.replaceChildren(this.hasMore ? this.olderButton
      : h("p", { class: "start-of-room", text: t("room.start") }));
  }

  async loadOlder(focusFirst) {
    if (!this.hasMore || this.loadingOlder || this.oldestSeq === null) return;
    this.loadingOlder = true;
    try {
      const data = await get(`/api/rooms/${this.room.id}/messages?limit=${PAGE}&before_seq=${this.oldestSeq}`);
      const anchor = this.list.firstElementChild;
      const offset = anchor ? anchor.offsetTop - this.timeline.scrollTop : 0;
      this.prepend(data.messages);
      this.hasMore = data.messages.length === PAGE;
      this.updateOlder();
      if (anchor) this.timeline.scrollTop = anchor.offsetTop - offset;
      announce(t("room.olderLoaded", { count: data.messages.length }));
      if (focusFirst && data.messages.length) this.views.get(data.messages[data.messages.length - 1].id)?.el.focus();
    } finally {
      this.loadingOlder = false;
    }
  }

  view(msg) {
    return new MessageView(msg, this.hooks);
  }

  prepend(messages) {
    const frag = document.createDocumentFragment();
    for (const m of messages) {
      if (this.views.has(m.id)) continue;
      const v = this.view(m);
      this.views.set(m.id, v);
      frag.append(v.el);
    }
    this.list.prepend(frag);
    if (messages.length) this.oldestSeq = Math.min(this.oldestSeq ?? Infinity, messages[0].seq);
  }

  append(messages) {
    for (const m of messages) {
      if (this.views.has(m.id) || m.thread_root_id) continue;
      const v = this.view(m);
      this.views.set(m.id, v);
      this.list.append(v.el);
      if (this.oldestSeq === null || m.seq < this.oldestSeq) this.oldestSeq = m.seq;
    }
  }

  nearBottom() {
    const tl = this.timeline;
    return tl.scrollHeight - tl.scrollTop - tl.clientHeight < 120;
  }

  scrollToBottom() {
    this.timeline.scrollTop = this.timeline.scrollHeight;
    this.stick = true;
  }

  addOwn(msg) {
    if (msg.thread_root_id) return;
    this.append([msg]);
    this.room.last_seq = Math.max(this.room.last_seq || 0, msg.seq);
    this.scrollToBottom();
  }

  /** A message.new event for this room. Returns true when it was shown in the timeline. */
  onNewMessage(msg) {
    this.room.last_seq = Math.max(this.room.last_seq || 0, msg.seq);
    if (msg.thread_root_id) {
      this.scheduleRead();
      return false;
    }
    const stick = this.stick || this.nearBottom();
    const isNew = !this.views.has(msg.id);
    this.append([msg]);
    if (isNew && msg.sender.id !== state.me.staff.id) {
      announce(t("room.newMessage", { sender: plain(msg.sender.display_name), body: plain(msg.body).slice(0, 200) }));
    }
    if (stick) this.scrollToBottom();
    this.scheduleRead();
    return true;
  }

  scheduleRead() {
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.markRead(), 250);
  }

  /** Move my read cursor to the newest message when the page is actually visible. */
  async markRead() {
    if (document.visibilityState !== "visible" || state.roomView !== this) return;
    const seq = Math.max(this.room.last_seq || 0, ...[...this.views.values()].map((v) => v.msg.seq));
    if (seq <= (this.room.last_read_seq || 0)) {
      this.hooks.roomRead(this.room.id);
      return;
    }
    try {
      const res = await post(`/api/rooms/${this.room.id}/read`, { seq });
      this.room.last_read_seq = res.last_read_seq;
      this.hooks.roomRead(this.room.id);
    } catch {
      // a later event retries
    }
  }

  /** Focus a message (search hits); loads older pages until it is found (bounded). */
  async reveal(messageId, seq) {
    for (let i = 0; i < 20 && !this.views.has(messageId) && this.hasMore && this.oldestSeq > seq; i += 1) {
      await this.loadOlder(false);
    }
    const v = this.views.get(messageId);
    if (!v) return false;
    v.el.classList.add("flash");
    this.stick = false;
    v.el.scrollIntoView({ block: "center" });
    v.el.focus();
    setTimeout(() => v.el.classList.remove("flash"), 2500);
    return true;
  }
}
