// The thread panel: the root message, its replies, and a composer that replies in the thread.
import { get } from "../api.js";
import { h, plain } from "../dom.js";
import { t } from "../i18n.js";
import { announce } from "../notify.js";
import { state } from "../state.js";
import { Composer } from "./composer.js";
import { MessageView } from "./message.js";

export class ThreadView {
  constructor(root, room, hooks) {
    this.rootId = root.id;
    this.roomId = root.room_id;
    this.hooks = hooks;
    this.views = new Map();
    this.list = h("ol", { class: "timeline-list thread-list", "aria-label": t("thread.replies") });
    this.composer = new Composer({ roomId: root.room_id, threadRootId: root.id, canPost: room?.can_post !== false,
      label: t("thread.composerLabel"), onSent: (msg) => this.add(msg) });
    this.el = h("div", { class: "thread-view" }, this.list, this.composer.el);
  }

  async load() {
    const data = await get(`/api/messages/${this.rootId}/thread`);
    this.add(data.root);
    data.replies.forEach((m) => this.add(m));
  }

  add(msg) {
    if (this.views.has(msg.id)) return false;
    const v = new MessageView(msg, this.hooks, { inThread: true });
    if (msg.id === this.rootId) v.el.classList.add("thread-root");
    this.views.set(msg.id, v);
    this.list.append(v.el);
    v.el.scrollIntoView({ block: "nearest" });
    return true;
  }

  onNewMessage(msg) {
    if (msg.thread_root_id !== this.rootId) return;
    if (this.add(msg) && msg.sender.id !== state.me.staff.id) {
      announce(t("thread.newReply", { sender: plain(msg.sender.display_name), body: plain(msg.body).slice(0, 200) }));
    }
  }
}
