// The composer: text with @mention autocomplete, Enter/Shift+Enter (configurable, IME-safe),
// a 重要 flag, and one file attachment by button or drag and drop.
import { get, post } from "../api.js";
import { h, plain, uid } from "../dom.js";
import { fileSize } from "../format.js";
import { t } from "../i18n.js";
import { announce } from "../notify.js";
import { state } from "../state.js";

const MAX_SUGGESTIONS = 8;
const ROOM_TOKEN_KEYS = ["mention.roomToken"];

export function roomMembers(roomId) {
  if (!state.memberCache.has(roomId)) {
    const p = get(`/api/rooms/${roomId}/members?limit=200`).then((d) => d.members).catch((err) => {
      state.memberCache.delete(roomId);
      throw err;
    });
    state.memberCache.set(roomId, p);
  }
  return state.memberCache.get(roomId);
}

function clientId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Composer {
  /** opts: {roomId, threadRootId, canPost, onSent(msg), label} */
  constructor(opts) {
    this.opts = opts;
    this.mentionIds = new Map();   // display name -> staff id, for names picked from the list
    this.mentionRoom = false;
    this.file = null;
    this.suggestions = [];
    this.active = -1;
    const base = uid(opts.threadRootId ? "thread-composer" : "composer");
    this.inputId = opts.threadRootId ? `${base}-input` : "composer-input";
    this.listId = `${base}-mentions`;
    this.hintId = `${base}-hint`;
    this.build();
  }

  build() {
    const o = this.opts;
    this.input = h("textarea", { id: this.inputId, class: "composer-input", rows: "2", maxlength: "10000",
      "aria-describedby": this.hintId, "aria-autocomplete": "list", "aria-controls": this.listId,
      disabled: !o.canPost, on: {
        keydown: (ev) => this.onKeyDown(ev), input: () => this.updateSuggestions(),
        blur: () => setTimeout(() => this.closeSuggestions(), 150) } });
    this.list = h("ul", { id: this.listId, class: "mention-list", role: "listbox", hidden: true,
      "aria-label": t("composer.mentionList") });
    this.fileInput = h("input", { type: "file", class: "visually-hidden", tabindex: "-1", "aria-hidden": "true",
      "aria-label": t("composer.attach"),
      on: { change: () => { if (this.fileInput.files[0]) this.setFile(this.fileInput.files[0]); } } });
    this.attachButton = h("button", { type: "button", class: "button secondary small", disabled: !o.canPost,
      text: t("composer.attach"), on: { click: () => this.fileInput.click() } });
    this.fileChip = h("div", { class: "pending-file", hidden: true });
    const importantId = `${this.inputId}-important`;
    this.important = h("input", { type: "checkbox", id: importantId, disabled: !o.canPost });
    this.sendButton = h("button", { type: "submit", class: "button primary", disabled: !o.canPost,
      text: t("composer.send") });
    this.error = h("p", { class: "form-error", role: "alert" });
    this.form = h("form", { class: `composer${o.threadRootId ? " thread-composer" : ""}`,
      "aria-label": o.label, on: { submit: (ev) => { ev.preventDefault(); this.send(); } } },
    h("label", { for: this.inputId, class: "visually-hidden", text: o.label }),
    h("div", { class: "composer-field" }, this.list, this.input),
    this.fileChip,
    h("div", { class: "composer-tools" },
      this.attachButton, this.fileInput,
      h("span", { class: "check" }, this.important, h("label", { for: importantId, text: t("composer.important") })),
      h("span", { class: "hint", id: this.hintId, text: o.canPost ? this.hintText() : t("composer.readOnly") }),
      this.sendButton),
    this.error);
    this.el = this.form;
  }

  hintText() {
    return state.prefs.enterSends ? t("composer.hintEnter") : t("composer.hintCtrlEnter");
  }

  focus() {
    this.input.focus();
  }

  // --- drag and drop (the room view forwards drops here) ----------------------------------------

  setFile(file) {
    if (!this.opts.canPost) return;
    this.file = file;
    this.fileChip.replaceChildren(
      h("span", { class: "file-icon", "aria-hidden": "true", text: "📎" }),
      h("span", { class: "file-name", text: plain(file.name) }),
      h("span", { class: "file-size", text: ` (${fileSize(file.size)})` }),
      h("button", { type: "button", class: "button link small", text: t("composer.removeFile"),
        "aria-label": t("composer.removeFileLabel", { name: plain(file.name) }),
        on: { click: () => this.clearFile() } }));
    this.fileChip.hidden = false;
    announce(t("composer.fileAttached", { name: plain(file.name) }));
  }

  clearFile() {
    this.file = null;
    this.fileInput.value = "";
    this.fileChip.hidden = true;
    this.fileChip.replaceChildren();
    this.input.focus();
  }

  // --- keyboard ------------------------------------------------------------------------------

  onKeyDown(ev) {
    if (ev.isComposing || ev.keyCode === 229) return;   // IME conversion: Enter confirms the kana, not send
    if (!this.list.hidden && this.suggestions.length) {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        const n = this.suggestions.length;
        this.setActive((this.active + (ev.key === "ArrowDown" ? 1 : n - 1)) % n);
        return;
      }
      if (ev.key === "Enter" || ev.key === "Tab") {
        if (this.active >= 0) {
          ev.preventDefault();
          this.pick(this.suggestions[this.active]);
          return;
        }
      }
      if (ev.key === "Escape") {
        ev.preventDefault();
        this.closeSuggestions();
        return;
      }
    }
    if (ev.key !== "Enter") return;
    const modifier = ev.ctrlKey || ev.metaKey;
    if (state.prefs.enterSends ? (!ev.shiftKey && !modifier) : modifier) {
      ev.preventDefault();
      this.send();
    }
  }

  // --- @mentions -----------------------------------------------------------------------------

  async updateSuggestions() {
    const before = this.input.value.slice(0, this.input.selectionStart);
    const match = before.match(/(^|\s)@([^\s@]{0,20})$/);
    if (!match) {
      this.closeSuggestions();
      return;
    }
    const query = match[2].toLowerCase();
    let members = [];
    try {
      members = await roomMembers(this.opts.roomId);
    } catch {
      return;
    }
    const meId = state.me.staff.id;
    const found = members.filter((m) => m.id !== meId && m.status !== "retired" && [m.display_name.replace(/\s/g, ""),
      m.display_name, m.kana.replace(/\s/g, ""), m.login].some((v) => (v || "").toLowerCase().includes(query)))
      .slice(0, MAX_SUGGESTIONS).map((m) => ({ id: m.id, name: plain(m.display_name), detail: plain(m.department) }));
    const roomToken = t("mention.roomToken");
    if (roomToken.toLowerCase().startsWith(query) || "room".startsWith(query) || "all".startsWith(query)) {
      found.push({ id: "room", name: roomToken, detail: t("mention.roomDetail") });
    }
    this.suggestions = found;
    this.renderSuggestions(match[2].length);
  }

  renderSuggestions(queryLength) {
    this.queryLength = queryLength;
    this.list.replaceChildren(...this.suggestions.map((s, i) => h("li", {
      id: `${this.listId}-${i}`, role: "option", class: "mention-option", "aria-selected": "false",
      on: { mousedown: (ev) => { ev.preventDefault(); this.pick(s); } } },
    h("span", { class: "mention-name", text: s.name }), h("span", { class: "mention-detail", text: s.detail }))));
    this.list.hidden = this.suggestions.length === 0;
    this.setActive(this.suggestions.length ? 0 : -1);
    if (this.suggestions.length) announce(t("composer.suggestions", { count: this.suggestions.length }));
  }

  setActive(index) {
    this.active = index;
    [...this.list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    if (index >= 0) this.input.setAttribute("aria-activedescendant", `${this.listId}-${index}`);
    else this.input.removeAttribute("aria-activedescendant");
  }

  closeSuggestions() {
    this.suggestions = [];
    this.list.hidden = true;
    this.list.replaceChildren();
    this.setActive(-1);
  }

  pick(s) {
    const caret = this.input.selectionStart;
    const before = this.input.value.slice(0, caret);
    const after = this.input.value.slice(caret);
    const start = before.length - this.queryLength - 1;   // the "@"
    const token = `@${s.name} `;
    this.input.value = before.slice(0, start) + token + after;
    const pos = start + token.length;
    this.input.setSelectionRange(pos, pos);
    if (s.id === "room") this.mentionRoom = true; else this.mentionIds.set(s.name, s.id);
    this.closeSuggestions();
    this.input.focus();
  }

  // --- sending -------------------------------------------------------------------------------

  async send() {
    if (!this.opts.canPost || this.sending) return;
    const body = this.input.value.trim();
    if (!body && !this.file) {
      this.error.textContent = t("composer.empty");
      return;
    }
    this.error.textContent = "";
    const mentions = [...this.mentionIds.entries()].filter(([name]) => body.includes(`@${name}`)).map(([, id]) => id);
    const mentionRoom = this.mentionRoom && ROOM_TOKEN_KEYS.some((k) => body.includes(`@${t(k)}`));
    const cid = clientId();
    this.sending = true;
    this.sendButton.disabled = true;
    try {
      let msg;
      if (this.file) {
        const form = new FormData();   // text fields first, then the file (the server reads in order)
        form.append("body", body);
        form.append("client_msg_id", cid);
        if (this.important.checked) form.append("important", "1");
        if (this.opts.threadRootId) form.append("thread_root_id", String(this.opts.threadRootId));
        form.append("file", this.file, this.file.name);
        msg = await post(`/api/rooms/${this.opts.roomId}/files`, form);
      } else {
        const payload = { body, client_msg_id: cid, important: this.important.checked };
        if (mentions.length) payload.mentions = mentions;
        if (mentionRoom) payload.mention_room = true;
        if (this.opts.threadRootId) payload.thread_root_id = this.opts.threadRootId;
        msg = await post(`/api/rooms/${this.opts.roomId}/messages`, payload);
      }
      this.input.value = "";
      this.important.checked = false;
      this.mentionIds.clear();
      this.mentionRoom = false;
      if (this.file) this.clearFile();
      announce(t("composer.sent"));
      this.opts.onSent?.(msg);
    } catch (err) {
      this.error.textContent = err.userMessage;
    } finally {
      this.sending = false;
      this.sendButton.disabled = !this.opts.canPost;
      this.input.focus();
    }
  }
}
