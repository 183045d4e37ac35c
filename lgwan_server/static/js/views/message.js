// One message in the timeline or a thread: sender (opens the profile card), 所属, time, 重要, body,
// attachments, stamps, 「既読 N」 (opens who has / has not read), and the thread button.
import { del, get, post, put } from "../api.js";
import { openDialog } from "../dialog.js";
import { clear, h, plain } from "../dom.js";
import { fileSize, renderBody, timeElement } from "../format.js";
import { t } from "../i18n.js";
import { announce } from "../notify.js";
import { state } from "../state.js";
import { messageMenu, showAcks, showHistory } from "./actions.js";
import { sanitizedBadge } from "./sanitized.js";

export const REACTIONS = [
  ["like", "👍"], ["ok", "🙆"], ["thanks", "🙏"], ["understood", "👌"], ["done", "✅"],
  ["check", "👀"], ["question", "❓"], ["celebrate", "🎉"], ["sorry", "🙇"], ["great", "✨"],
];
const GLYPH = Object.fromEntries(REACTIONS);
const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

export class MessageView {
  /** hooks: {openThread(msg), openReceipts(msg), openProfile(staffId)}; inThread: no thread button. */
  constructor(msg, hooks, { inThread = false } = {}) {
    this.msg = msg;
    this.hooks = hooks;
    this.inThread = inThread;
    this.el = h("li", { class: "msg", id: `${inThread ? "t" : "m"}-${msg.id}`, tabindex: "-1",
      dataset: { id: String(msg.id), seq: String(msg.seq) } });
    this.render();
    if (msg.ack_requested && msg.sender.id !== state.me?.staff?.id) this.checkAcked();
  }

  /** After a reload: has this person already pressed 確認? */
  async checkAcked() {
    try {
      const data = await get(`/api/messages/${this.msg.id}/acks`);
      if (data.acked.some((c) => c.id === state.me.staff.id) && !this.acked) {
        this.acked = true;
        this.patch({});
      }
    } catch {
      // the button still works; pressing it twice is harmless
    }
  }

  get mentionsMe() {
    const meId = state.me?.staff?.id;
    return (this.msg.mentions || []).includes(meId) || this.msg.mention_room;
  }

  render() {
    const m = this.msg;
    const el = clear(this.el);
    el.classList.toggle("important", Boolean(m.important) && !m.deleted);
    el.classList.toggle("mine", m.sender.id === state.me?.staff?.id);
    el.classList.toggle("mentions-me", this.mentionsMe && !m.deleted);
    el.classList.toggle("deleted", Boolean(m.deleted));
    const headId = `${el.id}-head`;
    el.setAttribute("aria-labelledby", headId);
    this.errorEl = h("p", { class: "form-error msg-error", role: "alert" });
    el.append(h("div", { class: "msg-head", id: headId },
      h("button", { type: "button", class: "sender", text: m.sender.display_name,
        "aria-haspopup": "dialog", on: { click: () => this.hooks.openProfile(m.sender.id) } }),
      m.sender.affiliation ? h("span", { class: "affiliation", text: m.sender.affiliation }) : null,
      timeElement(m.created_at),
      m.important && !m.deleted ? h("span", { class: "tag important-tag", text: t("msg.important") }) : null,
      this.mentionsMe && !m.deleted ? h("span", { class: "tag mention-tag", text: t("msg.mentionsYou") }) : null,
      m.edited_at && !m.deleted ? h("button", { type: "button", class: "edited", "aria-haspopup": "dialog",
        text: t("msg.edited"), title: t("msg.historyOpen"), "aria-label": t("msg.editedLabel"),
        on: { click: () => showHistory(this.msg) } }) : null,
      m.pinned && !m.deleted ? h("span", { class: "tag pin-tag", text: t("msg.pinned") }) : null,
      m.record && !m.deleted ? h("span", { class: "tag record-tag", title: m.record.title || "",
        text: t("msg.recordBadge", { label: m.record.class_label, until: m.record.retain_until }) }) : null));
    if (m.deleted) {
      el.append(h("p", { class: "msg-body deleted-body", text: t("msg.deleted") }), this.errorEl);
      return;
    }
    if (m.body) el.append(h("div", { class: "msg-body" }, renderBody(m.body)));
    if (m.attachments?.length) el.append(h("ul", { class: "attachments", "aria-label": t("msg.attachments") },
      m.attachments.map((a) => this.attachment(a))));
    this.reactionsEl = h("div", { class: "reactions" });
    this.renderReactions();
    el.append(this.reactionsEl);
    this.readButton = h("button", { type: "button", class: "chip read-count", "aria-haspopup": "dialog",
      on: { click: () => this.hooks.openReceipts(this.msg) } });
    this.renderReadCount();
    const actions = h("div", { class: "msg-actions" }, this.readButton,
      h("button", { type: "button", class: "chip", "aria-haspopup": "dialog", text: t("msg.addStamp"),
        on: { click: () => this.pickStamp() } }));
    if (!this.inThread && !m.thread_root_id) {
      this.replyButton = h("button", { type: "button", class: "chip reply",
        on: { click: () => this.hooks.openThread(this.msg) } });
      this.renderReplyCount();
      actions.append(this.replyButton);
    }
    const mine = m.sender.id === state.me?.staff?.id;
    if (m.ack_requested && mine) {
      actions.append(h("button", { type: "button", class: "chip ack-status", "aria-haspopup": "dialog",
        text: t("msg.ackStatus"), on: { click: () => showAcks(this.msg) } }));
    } else if (m.ack_requested) {
      this.ackButton = h("button", { type: "button", class: `chip ack${this.acked ? " mine" : ""}`,
        "aria-pressed": String(Boolean(this.acked)), disabled: Boolean(this.acked),
        text: this.acked ? t("msg.acked") : t("msg.ack"), on: { click: () => this.ack() } });
      actions.append(this.ackButton);
    }
    actions.append(h("button", { type: "button", class: "chip more", "aria-haspopup": "dialog",
      text: t("msg.more"), "aria-label": t("msg.moreLabel", { name: plain(m.sender.display_name) }),
      on: { click: () => messageMenu(this) } }));
    el.append(actions, this.errorEl);
  }

  /** Show an error from an action on this message, next to it (e.g. a refused delete). */
  showError(text) {
    if (!this.errorEl) return;
    this.errorEl.textContent = text;
    announce(text, { assertive: true });
  }

  async ack() {
    try {
      await post(`/api/messages/${this.msg.id}/ack`, {});
      this.acked = true;
      this.render();
      announce(t("msg.ackDone"));
      this.el.querySelector(".ack")?.focus();
    } catch (err) {
      this.showError(err.userMessage);
    }
  }

  attachment(a) {
    const name = plain(a.filename);
    const link = h("a", { href: `/api/files/${encodeURIComponent(a.id)}`, download: name, class: "file-link" },
      h("span", { class: "file-icon", "aria-hidden": "true", text: "📎" }),
      h("span", { class: "file-name", text: name }),
      h("span", { class: "file-size", text: ` (${fileSize(a.size)})` }));
    const preview = IMAGE_TYPES.has(a.mime)
      ? h("img", { class: "preview", src: `/api/files/${encodeURIComponent(a.id)}?inline=1`, alt: name,
        loading: "lazy" }) : null;
    // A file from a guest or phone: rebuilt by the sanitizer; the badge opens its report (issue 3).
    return h("li", {}, preview, link, a.origin === "sanitized" ? sanitizedBadge(a) : null);
  }

  renderReactions() {
    const box = clear(this.reactionsEl);
    const meId = state.me?.staff?.id;
    for (const [code, glyph] of REACTIONS) {
      const who = this.msg.reactions?.[code] || [];
      if (!who.length) continue;
      const mine = who.includes(meId);
      box.append(h("button", { type: "button", class: `chip stamp${mine ? " mine" : ""}`, "aria-pressed": String(mine),
        "aria-label": t("msg.stampCount", { stamp: t(`reaction.${code}`), count: who.length }),
        title: t(`reaction.${code}`), on: { click: () => this.toggleStamp(code) } },
      h("span", { "aria-hidden": "true" }, h("span", { class: "stamp-glyph-small", text: glyph }),
        ` ${t(`reaction.${code}`)} ${who.length}`)));
    }
  }

  renderReadCount() {
    if (!this.readButton) return;
    const n = this.msg.read_count ?? 0;
    this.readButton.textContent = t("msg.readCount", { count: n });
    this.readButton.setAttribute("aria-label", t("msg.readCountLabel", { count: n }));
  }

  renderReplyCount() {
    if (!this.replyButton) return;
    const n = this.msg.reply_count || 0;
    this.replyButton.textContent = n ? t("msg.replies", { count: n }) : t("msg.reply");
  }

  async toggleStamp(code) {
    const meId = state.me.staff.id;
    const mine = (this.msg.reactions?.[code] || []).includes(meId);
    const path = `/api/messages/${this.msg.id}/reactions/${encodeURIComponent(code)}`;
    try {
      if (mine) await del(path);
      else await put(path, {});
      this.applyReaction(code, meId, !mine);
    } catch (err) {
      announce(err.userMessage, { assertive: true });
    }
  }

  pickStamp() {
    const grid = h("div", { class: "stamp-grid", role: "group", "aria-label": t("msg.stampPicker") });
    const { close } = openDialog({ title: t("msg.stampPicker"), content: grid, className: "stamp-dialog" });
    for (const [code, glyph] of REACTIONS) {
      grid.append(h("button", { type: "button", class: "stamp-option", on: { click: async () => {
        close();
        if (!(this.msg.reactions?.[code] || []).includes(state.me.staff.id)) await this.toggleStamp(code);
      } } }, h("span", { class: "stamp-glyph", "aria-hidden": "true", text: glyph }),
      h("span", { text: t(`reaction.${code}`) })));
    }
    grid.querySelector("button")?.focus();
  }

  // --- live updates ---------------------------------------------------------------------------

  applyReaction(code, staffId, add) {
    const reactions = { ...(this.msg.reactions || {}) };
    const who = new Set(reactions[code] || []);
    if (add) who.add(staffId); else who.delete(staffId);
    if (who.size) reactions[code] = [...who]; else delete reactions[code];
    this.msg.reactions = reactions;
    if (this.reactionsEl) this.renderReactions();
  }

  applyReceipt(staffId, fromSeq, toSeq) {
    if (this.msg.sender.id === staffId) return false;
    if (this.msg.seq > fromSeq && this.msg.seq <= toSeq) {
      this.msg.read_count = (this.msg.read_count || 0) + 1;
      this.renderReadCount();
      return true;
    }
    return false;
  }

  setReplyCount(n) {
    this.msg.reply_count = n;
    this.renderReplyCount();
  }

  edit(body, editedAt) {
    this.patch({ body, edited_at: editedAt });
  }

  patch(fields) {
    Object.assign(this.msg, fields);
    const focused = this.el.contains(document.activeElement) ? document.activeElement.className : null;
    this.render();
    if (focused) this.el.querySelector(`.${focused.split(" ").filter(Boolean).join(".")}`)?.focus();
  }

  markDeleted() {
    const hadFocus = this.el.contains(document.activeElement);
    this.patch({ deleted: true, body: "" });
    if (hadFocus && !this.el.contains(document.activeElement)) this.el.focus();
  }
}

export { GLYPH };
