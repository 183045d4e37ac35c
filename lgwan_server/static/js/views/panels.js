// Dialogs and side-panel content: 既読/未読 lists, the profile card, search results, settings.
import { get, post } from "../api.js";
import { openDialog } from "../dialog.js";
import { h, plain } from "../dom.js";
import { fullTime, highlight, snippet, timeElement } from "../format.js";
import { LANGS, getLang, setLang, t } from "../i18n.js";
import { announce, notificationsSupported, requestPermission } from "../notify.js";
import { savePrefs } from "../prefs.js";
import { state } from "../state.js";

function personRow(card) {
  return h("li", { class: "person" },
    h("span", { class: "person-name", text: card.display_name }),
    h("span", { class: "person-detail", text: [card.department, card.rank].filter(Boolean).map(plain).join(" · ") }));
}

/** 「既読 N」: who has read the message and who has not. */
export async function showReceipts(msg) {
  const data = await get(`/api/messages/${msg.id}/receipts`);
  openDialog({
    title: t("receipts.title"),
    className: "receipts-dialog",
    content: [
      h("p", { class: "dialog-context", text: plain(msg.body).slice(0, 80) || t("msg.attachmentOnly") }),
      h("div", { class: "receipt-columns" },
        h("section", { "aria-labelledby": "receipts-read" },
          h("h3", { id: "receipts-read", text: t("receipts.read", { count: data.read_count }) }),
          data.read.length ? h("ul", { class: "people" }, data.read.map(personRow))
            : h("p", { class: "empty", text: t("receipts.none") })),
        h("section", { "aria-labelledby": "receipts-unread" },
          h("h3", { id: "receipts-unread", text: t("receipts.unread", { count: data.unread_count }) }),
          data.unread.length ? h("ul", { class: "people" }, data.unread.map(personRow))
            : h("p", { class: "empty", text: t("receipts.none") }))),
    ],
  });
}

export function staffCard(staffId) {
  if (!state.cardCache.has(staffId)) {
    state.cardCache.set(staffId, get(`/api/staff/${staffId}`).catch((err) => {
      state.cardCache.delete(staffId);
      throw err;
    }));
  }
  return state.cardCache.get(staffId);
}

/** The profile card: 氏名, よみがな, 所属, 職層, 役職, and a DM button. */
export async function showProfile(staffId, { openRoom }) {
  const card = await staffCard(staffId);
  const rows = [["profile.kana", card.kana], ["profile.department", card.department], ["profile.rank", card.rank],
    ["profile.title", card.title], ["profile.login", card.login]];
  const isMe = staffId === state.me.staff.id;
  const dm = isMe || card.status !== "active" ? null : h("button", { type: "button", class: "button primary",
    text: t("profile.sendDm"), on: { click: async () => {
      const room = await post("/api/dms", { member_ids: [staffId] });
      close();
      openRoom(room.id, true);
    } } });
  const { close } = openDialog({
    title: card.display_name,
    className: "profile-dialog",
    content: [
      h("dl", { class: "profile" }, rows.filter(([, v]) => v).map(([k, v]) => [h("dt", { text: t(k) }), h("dd", { text: v })])),
      card.status !== "active" ? h("p", { class: "tag", text: t(`status.${card.status}`) }) : null,
    ],
    actions: dm ? [dm] : [],
  });
}

/** Search results for the side panel; each hit can be opened in its room. */
export async function searchPanel(query, { openMessage }) {
  const data = await get(`/api/search?q=${encodeURIComponent(query)}&limit=50`);
  const results = data.results;
  announce(t("search.count", { count: results.length, query }));
  if (!results.length) return h("p", { class: "empty", role: "status", text: t("search.none", { query }) });
  return h("div", {},
    h("p", { role: "status", class: "result-count", text: t("search.count", { count: results.length, query }) }),
    h("ol", { class: "search-results" }, results.map((m) => h("li", { class: "search-hit" },
      h("p", { class: "hit-meta" }, h("span", { class: "hit-room", text: m.room_name }),
        h("span", { text: m.sender.display_name }), timeElement(m.created_at)),
      h("p", { class: "hit-body" }, highlight(snippet(m.body, query), query)),
      h("button", { type: "button", class: "button link small", text: t("search.open"),
        "aria-label": t("search.openLabel", { room: plain(m.room_name), time: fullTime(m.created_at) }),
        on: { click: () => openMessage(m) } })))));
}

/** Settings: language, Enter behaviour, desktop notifications. */
export function showSettings({ onChange }) {
  const prefs = state.prefs;
  const lang = h("select", { id: "set-lang", class: "input" },
    LANGS.map((code) => h("option", { value: code, selected: code === getLang(), text: t(`lang.${code}`) })));
  const enterRadio = (value, key) => {
    const id = `set-enter-${value}`;
    return h("div", { class: "radio" },
      h("input", { type: "radio", name: "set-enter", id, value, checked: String(prefs.enterSends) === value }),
      h("label", { for: id, text: t(key) }));
  };
  const notify = h("select", { id: "set-notify", class: "input" },
    ["all", "mentions", "off"].map((v) => h("option", { value: v, selected: prefs.notify === v, text: t(`settings.notify.${v}`) })));
  const permission = notificationsSupported() ? Notification.permission : "unsupported";
  const permText = h("p", { class: "hint", id: "set-perm", text: t(`settings.permission.${permission}`) });
  const permButton = permission === "default" ? h("button", { type: "button", class: "button secondary small",
    text: t("settings.allowNotifications"), on: { click: async () => {
      const result = await requestPermission();
      permText.textContent = t(`settings.permission.${result}`);
    } } }) : null;
  const save = h("button", { type: "button", class: "button primary", text: t("common.save") });
  const passwordButton = h("button", { type: "button", class: "button secondary small", id: "open-password",
    "aria-haspopup": "dialog", text: t("password.open"), on: { click: () => {
      close();
      passwordDialog();
    } } });
  const { close, dialog } = openDialog({
    title: t("settings.title"),
    content: [
      h("div", { class: "field" }, h("label", { for: "set-lang", text: t("settings.language") }), lang),
      h("fieldset", { class: "field" }, h("legend", { text: t("settings.enter") }),
        enterRadio("true", "settings.enterSends"), enterRadio("false", "settings.ctrlEnterSends")),
      h("div", { class: "field" }, h("label", { for: "set-notify", text: t("settings.notify") }), notify,
        permText, permButton),
      h("div", { class: "field" }, h("span", { class: "field-label", text: t("password.heading") }), passwordButton),
    ],
    actions: [save],
  });
  save.addEventListener("click", async () => {
    const enterSends = dialog.querySelector("input[name=set-enter]:checked")?.value !== "false";
    state.prefs = savePrefs({ lang: lang.value, enterSends, notify: notify.value });
    const langChanged = lang.value !== getLang();
    if (langChanged) await setLang(lang.value);
    close();
    onChange(langChanged);
  });
}

/** Change one's own password: current, new, new again. A wrong current password is not a sign-out. */
export function passwordDialog() {
  const input = (id, autocomplete) => h("input", { id, type: "password", class: "input", maxlength: "256", autocomplete,
    required: true });
  const current = input("pw-current", "current-password");
  const next = input("pw-new", "new-password");
  const again = input("pw-again", "new-password");
  const error = h("p", { class: "form-error", role: "alert" });
  const save = h("button", { type: "button", class: "button primary", text: t("password.submit") });
  const row = (control, key, hint) => h("div", { class: "field" }, h("label", { for: control.id, text: t(key) }), control,
    hint ? h("p", { class: "hint", id: `${control.id}-hint`, text: t(hint) }) : null);
  next.setAttribute("aria-describedby", "pw-new-hint");
  const { close } = openDialog({ title: t("password.title"), className: "password-dialog",
    content: [row(current, "password.current"), row(next, "password.new", "password.policy"), row(again, "password.again"), error],
    actions: [save], closeLabel: t("common.cancel") });
  current.focus();
  save.addEventListener("click", async () => {
    error.textContent = "";
    if (!current.value || !next.value) {
      error.textContent = t("password.missing");
      return;
    }
    if (next.value !== again.value) {
      error.textContent = t("password.mismatch");
      again.focus();
      return;
    }
    try {
      await post("/api/auth/password", { current: current.value, new: next.value });
      close();
      announce(t("password.done"));
    } catch (err) {
      error.textContent = err.code === "wrong_current_password" ? t("password.wrongCurrent") : err.userMessage;
    }
  });
}
