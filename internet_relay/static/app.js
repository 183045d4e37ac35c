// Guest and staff-phone UI of the Kakehashi relay. No framework, no CDN, no inline script (CSP).
// Every piece of text from the server goes in with textContent, never as HTML. Words shown to people
// come from the message tables in i18n.js (やさしい日本語 by default, English on request).
import { MESSAGES, apply, errorText, getLang, locale, onLangChange, setLang, setText, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const state = { csrf: "", me: null, rooms: [], room: null, ws: null, wsRetry: 0, lastSeq: 0, readTimer: 0,
                enrolInfo: null };

function affiliation(value) {
  return value || t("noAffiliation");
}

/** Why a message was refused: the relay says it in Japanese; other languages use their table of codes
 * (a code it does not know gets a plain "not sent", never Japanese on an English page). */
function refusedText(p) {
  if (getLang() === "ja") return p.refused_message || t("refused.other");
  const key = `refused.${p.refused_code}`;
  return p.refused_code && key in MESSAGES[getLang()] ? t(key) : t("refused.other");
}

function show(view) {
  for (const id of ["view-enrol", "view-login", "view-wait", "view-chat"]) $(id).hidden = id !== view;
  $("who").hidden = !state.me;
}

function alertText(text) {
  const box = $("alert");
  box.textContent = text || "";
  box.hidden = !text;
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.csrf && method !== "GET") headers["X-CSRF-Token"] = state.csrf;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                               credentials: "same-origin" });
  } catch (e) {
    throw Object.assign(new Error(t("error.network")), { code: "network" });
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw Object.assign(new Error(errorText(err)), { code: err.code || "error", status: resp.status });
  }
  return data;
}

function timeJst(iso) {
  const d = new Date(iso);
  return d.toLocaleString(locale(), { timeZone: "Asia/Tokyo", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

function newId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- enrolment ------------------------------------------------------------------------------------

function renderInvited() {
  const info = state.enrolInfo;
  if (!info) return;
  setText($("enrol-invited"), "enrol.invited", { name: info.display_name, affiliation: affiliation(info.affiliation),
                                                 org: info.organisation || t("enrol.orgFallback") });
}

async function startEnrol(token) {
  show("view-enrol");
  history.replaceState(null, "", "/enrol");   // the token leaves the address bar (and any screenshot)
  let info;
  try {
    info = await api("POST", "/api/enrol/info", { token });
  } catch (e) {
    alertText(e.message);
    $("enrol-form").hidden = true;
    return;
  }
  state.enrolInfo = info;
  renderInvited();
  setText($("enrol-password-label"), "enrol.password", { min: info.password_min_length });
  if (info.login) $("enrol-login").value = info.login;
  if (info.privacy_notice) {
    $("privacy-box").hidden = false;
    $("privacy-text").textContent = info.privacy_notice;
  }
  $("totp-start").addEventListener("click", async () => {
    try {
      const totp = await api("POST", "/api/enrol/totp", { token });
      if (totp.qr_data_uri.startsWith("data:image/svg+xml")) $("totp-qr").src = totp.qr_data_uri;
      $("totp-secret").textContent = totp.secret;
      $("totp-box").hidden = false;
      $("enrol-code").focus();
    } catch (e) { alertText(e.message); }
  });
  $("enrol-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    alertText("");
    const guest = info.kind === "guest";
    if (guest && !$("privacy-ack").checked) { alertText(t("enrol.ackNeeded")); $("privacy-ack").focus(); return; }
    try {
      await api("POST", "/api/enrol/complete", { token, login: $("enrol-login").value.trim(),
        password: $("enrol-password").value, totp: $("enrol-code").value.trim(), privacy_ack: guest ? $("privacy-ack").checked : false });
      $("enrol-form").hidden = true;
      $("enrol-done").hidden = false;
      setText($("enrol-next"), guest ? "enrol.nextGuest" : "enrol.nextStaff");
      $("enrol-done").querySelector("p").focus?.();
    } catch (e) { alertText(e.message); }
  });
}

// --- login ----------------------------------------------------------------------------------------

function startLogin() {
  show("view-login");
  $("login-form").onsubmit = async (ev) => {
    ev.preventDefault();
    alertText("");
    $("device-wait").hidden = true;
    try {
      const r = await api("POST", "/api/login", { login: $("login-id").value.trim(), password: $("login-password").value,
                                                   totp: $("login-code").value.trim() });
      $("login-code").value = "";
      if (r.status === "device_pending") { $("device-wait").hidden = false; return; }
      state.csrf = r.csrf_token;
      await enter();
    } catch (e) { alertText(e.message); }
  };
  $("login-id").focus();
}

async function enter() {
  const me = await api("GET", "/api/me");
  state.me = me;
  state.csrf = me.csrf_token;
  renderWho();
  connect();
  if (me.status !== "active") { show("view-wait"); return; }
  show("view-chat");
  if (me.kind === "staff") await loadSafety();
  await loadRooms();
}

function renderWho() {
  if (!state.me) return;
  $("who-name").textContent = t("who", { name: state.me.display_name, affiliation: affiliation(state.me.affiliation) });
}

$("logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout", {}); } catch (e) { /* already logged out */ }
  location.href = "/";
});

// --- rooms and messages ---------------------------------------------------------------------------

async function loadRooms() {
  const data = await api("GET", "/api/rooms");
  state.rooms = data.rooms;
  renderRoomList();
  if (state.room && !state.rooms.some((r) => r.id === state.room.id)) { state.room = null; $("room").hidden = true; }
  if (!state.room && state.rooms.length) await openRoom(state.rooms[0].id);
}

function renderRoomList() {
  const list = $("room-list");
  list.replaceChildren();
  for (const room of state.rooms) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = room.unread ? t("rooms.unread", { name: room.name, count: room.unread }) : room.name;
    b.setAttribute("aria-current", String(state.room && state.room.id === room.id));
    b.addEventListener("click", () => openRoom(room.id));
    li.append(b);
    list.append(li);
  }
  $("no-rooms").hidden = state.rooms.length > 0;
}

async function openRoom(roomId) {
  const data = await api("GET", `/api/rooms/${roomId}/messages?limit=100`);
  state.room = data.room;
  $("room").dataset.roomId = String(data.room.id);     // upload.js sends files to this room
  $("room").hidden = false;
  $("room-name").textContent = data.room.name;
  $("members").hidden = true;
  $("members-toggle").setAttribute("aria-expanded", "false");
  renderMessages(data.messages, data.pending);
  for (const b of $("room-list").querySelectorAll("button")) b.setAttribute("aria-current", "false");
  const idx = state.rooms.findIndex((r) => r.id === roomId);
  const btn = $("room-list").querySelectorAll("button")[idx];
  if (btn) btn.setAttribute("aria-current", "true");
  scheduleRead();
}

function messageItem(m) {
  const li = document.createElement("li");
  li.dataset.id = String(m.id);
  if (m.client_msg_id) li.dataset.client = m.client_msg_id;
  if (m.mine) li.classList.add("mine");
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = t(m.edited_at ? "msg.metaEdited" : "msg.meta", { name: m.sender.display_name,
    affiliation: affiliation(m.sender.affiliation), time: timeJst(m.created_at) });
  const body = document.createElement("p");
  body.className = "body";
  body.textContent = m.deleted ? t("msg.deleted") : m.body || (m.attachments ? t("msg.fileOnly") : "");
  li.append(meta, body);
  if (m.attachments && m.body) {
    const note = document.createElement("p");
    note.className = "state";
    note.textContent = t("msg.files", { count: m.attachments });
    li.append(note);
  }
  if (m.mine) {
    const read = document.createElement("p");
    read.className = "state read";
    read.textContent = m.read_count ? t("msg.read", { count: m.read_count }) : t("msg.unread");
    li.append(read);
  }
  return li;
}

function pendingItem(p) {
  const li = document.createElement("li");
  li.className = "mine";
  li.dataset.client = p.client_msg_id;
  li.dataset.pending = "1";
  const body = document.createElement("p");
  body.className = "body";
  body.textContent = p.body;
  const st = document.createElement("p");
  st.className = p.status === "refused" ? "state refused" : "state";
  st.textContent = p.status === "refused" ? t("msg.refused", { reason: refusedText(p) }) : t("msg.sending");
  li.append(body, st);
  return li;
}

function renderMessages(messages, pending) {
  const list = $("messages");
  list.replaceChildren(...messages.map(messageItem), ...pending.map(pendingItem));
  state.lastSeq = messages.length ? messages[messages.length - 1].seq : 0;
  list.scrollTop = list.scrollHeight;
}

function addMessage(m) {
  const list = $("messages");
  if (list.querySelector(`li[data-id="${m.id}"]`)) return;
  const waiting = m.client_msg_id && list.querySelector(`li[data-pending][data-client="${CSS.escape(m.client_msg_id)}"]`);
  const item = messageItem(m);
  if (waiting) waiting.replaceWith(item); else list.append(item);
  state.lastSeq = Math.max(state.lastSeq, m.seq);
  list.scrollTop = list.scrollHeight;
  scheduleRead();
}

function showPending(p) {
  const list = $("messages");
  const item = pendingItem(p);
  const old = list.querySelector(`li[data-client="${CSS.escape(p.client_msg_id)}"]`);
  if (old) { if (old.dataset.pending) old.replaceWith(item); } else list.append(item);
  if (p.status === "refused") alertText(t("msg.refused", { reason: refusedText(p) }));
}

function scheduleRead() {
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(async () => {
    if (!state.room || document.visibilityState !== "visible" || !state.lastSeq) return;
    try { await api("POST", `/api/rooms/${state.room.id}/read`, { seq: state.lastSeq }); } catch (e) { /* next time */ }
  }, 300);
}
document.addEventListener("visibilitychange", scheduleRead);

async function refreshRoom() {
  if (!state.room) return;
  const data = await api("GET", `/api/rooms/${state.room.id}/messages?limit=100`);
  renderMessages(data.messages, data.pending);
}

async function showMembers() {
  if (!state.room) return;
  const data = await api("GET", `/api/rooms/${state.room.id}/members`);
  $("members").replaceChildren(...data.members.map((m) => {
    const li = document.createElement("li");
    li.textContent = t(m.me ? "room.memberMe" : "room.member", { name: m.display_name, affiliation: affiliation(m.affiliation) });
    return li;
  }));
}

$("members-toggle").addEventListener("click", async () => {
  const open = $("members-toggle").getAttribute("aria-expanded") === "true";
  $("members-toggle").setAttribute("aria-expanded", String(!open));
  $("members").hidden = open;
  if (!open) await showMembers();
});

$("post-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  alertText("");
  const text = $("post-body").value;
  if (!text.trim() || !state.room) return;
  try {
    const p = await api("POST", `/api/rooms/${state.room.id}/messages`, { body: text, client_msg_id: newId() });
    $("post-body").value = "";
    if (p.client_msg_id) showPending(p);
  } catch (e) { alertText(e.message); }
  $("post-body").focus();
});
$("post-body").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) $("post-form").requestSubmit();
});

// --- 安否確認 (staff phones) ------------------------------------------------------------------------

const CONDITIONS = ["safe", "minor", "serious", "need_help"];
const ATTEND = ["yes", "no", "unknown"];
const conditionLabel = (code) => (CONDITIONS.includes(code) ? t(`safety.condition.${code}`) : code);
const attendLabel = (code) => (ATTEND.includes(code) ? t(`safety.attend.${code}`) : code);
const rollupsOpen = new Set();

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

async function loadSafety() {
  if (!state.me || state.me.kind !== "staff") return;
  let data;
  try { data = await api("GET", "/api/safety"); } catch (e) { return; }
  $("safety").hidden = !(data.checks.length || data.can_start);
  $("safety-start-box").hidden = !data.can_start;
  const open = data.checks.filter((c) => c.asked && !c.closed_at && !c.answer);
  $("safety-none").hidden = open.length > 0;
  $("safety-list").replaceChildren(...data.checks.map(checkItem));
  for (const id of rollupsOpen) await showRollup(id);
}

function answerText(a) {
  if (!a) return t("safety.notAnswered");
  const parts = [t("safety.answered", { condition: conditionLabel(a.condition) })];
  if (a.attend && a.attend !== "unknown") parts.push(attendLabel(a.attend));
  if (a.eta_minutes !== null && a.eta_minutes !== undefined) parts.push(t("safety.eta", { minutes: a.eta_minutes }));
  return t("safety.answerAt", { answer: parts.join(t("safety.sep")), time: timeJst(a.answered_at) });
}

function checkItem(c) {
  const li = el("li", { "data-check": String(c.id) });
  li.append(el("h3", { text: t("safety.heading", { title: c.title }) }),
            el("p", { class: "meta", text: `${t("safety.started", { time: timeJst(c.started_at) })}${c.origin === "relay" ? t("safety.startedRelay") : ""}${c.closed_at ? t("safety.closed") : ""}` }));
  if (c.message) li.append(el("p", { class: "body", text: c.message }));
  if (c.asked) {
    const status = el("p", { class: "answer-state", role: "status", text: c.closed_at && !c.answer ? t("safety.closedNoAnswer") : answerText(c.answer) });
    li.append(status);
    if (!c.closed_at) li.append(taps(c, status), details(c, status));
  }
  if (c.mine) {
    const box = el("div", { class: "rollup", id: `rollup-${c.id}` });
    const toggle = el("button", { type: "button", "aria-expanded": String(rollupsOpen.has(c.id)), "aria-controls": `rollup-${c.id}`, text: t("safety.showRollup") });
    toggle.addEventListener("click", async () => {
      if (rollupsOpen.has(c.id)) { rollupsOpen.delete(c.id); box.replaceChildren(); toggle.setAttribute("aria-expanded", "false"); return; }
      rollupsOpen.add(c.id);
      toggle.setAttribute("aria-expanded", "true");
      await showRollup(c.id);
    });
    li.append(toggle, box);
  }
  return li;
}

async function sendAnswer(c, body, status) {
  alertText("");
  try {
    const r = await api("POST", `/api/safety/${c.id}/answer`, { ...body, client_id: newId() });
    c.answer = r.answer;
    status.textContent = answerText(r.answer);
    const group = status.parentElement.querySelector(".taps");
    for (const b of group.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.condition === r.answer.condition));
    $("safety-none").hidden = true;
  } catch (e) { alertText(e.message); }
}

function taps(c, status) {
  const group = el("div", { class: "taps", role: "group", "aria-label": t("safety.taps") });
  for (const code of CONDITIONS) {
    const b = el("button", { type: "button", "data-condition": code, "aria-pressed": String(!!c.answer && c.answer.condition === code),
                            class: code === "serious" || code === "need_help" ? "serious" : "", text: conditionLabel(code) });
    b.addEventListener("click", () => sendAnswer(c, { condition: code, ...(c.answer ? keepDetails(c.answer) : {}) }, status));
    group.append(b);
  }
  return group;
}

function keepDetails(a) {
  return { attend: a.attend, eta_minutes: a.eta_minutes, location: a.location, note: a.note };
}

function details(c, status) {
  const asks = new Set(c.questions);
  if (![...asks].some((q) => q !== "condition")) return el("span");
  const box = el("details", { class: "more" }, el("summary", { text: t("safety.more") }));
  const form = el("form", { novalidate: "" });
  const id = (name) => `safety-${c.id}-${name}`;
  if (asks.has("attend")) {
    const fs = el("fieldset", {}, el("legend", { text: t("safety.attendLegend") }));
    for (const code of ATTEND) {
      const label = attendLabel(code);
      const input = el("input", { type: "radio", name: id("attend"), value: code, id: id(`attend-${code}`) });
      if ((c.answer ? c.answer.attend : "unknown") === code) input.checked = true;
      fs.append(el("label", { for: id(`attend-${code}`) }, input, ` ${label}`), " ");
    }
    form.append(fs);
  }
  if (asks.has("eta")) form.append(el("p", {}, el("label", { for: id("eta"), text: t("safety.etaLabel") }), el("br"),
                                      el("input", { id: id("eta"), type: "number", min: "0", max: "10080", inputmode: "numeric" })));
  if (asks.has("location")) form.append(el("p", {}, el("label", { for: id("location"), text: t("safety.location") }), el("br"),
                                           el("input", { id: id("location"), maxlength: "200" })));
  if (asks.has("note")) form.append(el("p", {}, el("label", { for: id("note"), text: t("safety.note") }), el("br"),
                                       el("textarea", { id: id("note"), rows: "2", maxlength: "1000" })));
  form.append(el("p", {}, el("button", { type: "submit", class: "primary", text: t("safety.sendDetails") })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const condition = c.answer ? c.answer.condition : null;
    if (!condition) { alertText(t("safety.conditionFirst")); return; }
    const body = { condition };
    const attend = form.querySelector(`input[name="${id("attend")}"]:checked`);
    if (attend) body.attend = attend.value;
    const eta = form.querySelector(`#${id("eta")}`);
    if (eta && eta.value.trim() !== "") body.eta_minutes = Math.max(0, Math.min(10080, parseInt(eta.value, 10) || 0));
    const loc = form.querySelector(`#${id("location")}`);
    if (loc) body.location = loc.value;
    const note = form.querySelector(`#${id("note")}`);
    if (note) body.note = note.value;
    await sendAnswer(c, body, status);
  });
  box.append(form);
  return box;
}

async function showRollup(checkId) {
  const box = $(`rollup-${checkId}`);
  if (!box) return;
  let data;
  try { data = await api("GET", `/api/safety/${checkId}/rollup`); } catch (e) { alertText(e.message); return; }
  const totals = data.totals;
  const cols = ["targets", "answered", "unanswered", "safe", "minor", "serious", "need_help", "attend_yes"];
  const table = el("table", {}, el("caption", { text: t("safety.rollupCaption") }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: t("safety.col.affiliation") }),
                       ...cols.map((k) => el("th", { scope: "col", text: t(`safety.col.${k}`) })))),
    el("tbody", {}, ...data.affiliations.map((r) => el("tr", {}, el("th", { scope: "row", text: r.affiliation }),
                                                          ...cols.map((k) => el("td", { text: String(r[k]) }))))),
    el("tfoot", {}, el("tr", {}, el("th", { scope: "row", text: t("safety.total") }), ...cols.map((k) => el("td", { text: String(totals[k]) })))));
  const summary = el("p", { role: "status", text: t("safety.summary", { answered: totals.answered, targets: totals.targets,
                                                                       attention: totals.needs_attention }) });
  const sep = t("safety.sep");
  const attention = el("ul", { "aria-label": t("safety.attention") },
    ...data.attention.map((a) => el("li", { text: `${t("safety.attentionItem", { condition: conditionLabel(a.condition), name: a.display_name, affiliation: affiliation(a.affiliation) })}${a.location ? `${sep}${a.location}` : ""}${a.note ? `${sep}${a.note}` : ""}` })));
  const remind = el("button", { type: "button", text: t("safety.remind") });
  remind.addEventListener("click", async () => {
    try { const r = await api("POST", `/api/safety/${checkId}/remind`, {}); alertText(t("safety.reminded", { count: r.reminded })); }
    catch (e) { alertText(e.message); }
  });
  box.replaceChildren(summary, table, attention, ...(data.check.closed_at ? [] : [remind]));
}

$("safety-start-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  alertText("");
  const body = { template: $("safety-template").value, title: $("safety-start-title").value };
  if ($("safety-start-message").value.trim()) body.message = $("safety-start-message").value;
  try {
    const c = await api("POST", "/api/safety", body);
    $("safety-start-box").open = false;
    $("safety-start-title").value = "";
    $("safety-start-message").value = "";
    rollupsOpen.add(c.id);
    await loadSafety();
  } catch (e) { alertText(e.message); }
});

// --- live events ----------------------------------------------------------------------------------

function connect() {
  if (state.ws) return;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
  state.ws = ws;
  ws.onmessage = (ev) => onEvent(JSON.parse(ev.data)).catch(() => {});
  ws.onopen = () => { state.wsRetry = 0; };
  ws.onclose = (ev) => {
    state.ws = null;
    if (ev.code === 4001) { location.href = "/"; return; }     // session ended (removed, revoked)
    const delay = Math.min(30000, 1000 * 2 ** state.wsRetry++);
    setTimeout(async () => {
      try { await enter(); if (state.room) await refreshRoom(); } catch (e) { if (e.status === 401) location.href = "/"; }
    }, delay);
  };
}

async function onEvent(e) {
  const here = state.room && e.room_id === state.room.id;
  switch (e.type) {
    case "message.new":
      if (state.room && e.message.room_id === state.room.id) addMessage(e.message); else await loadRooms();
      break;
    case "pending":
      if (state.room && e.pending.room_id === state.room.id) showPending(e.pending);
      break;
    case "message.edit": case "message.delete": case "receipt":
      if (here) await refreshRoom();
      break;
    case "room.update": case "room.remove": case "member.update":
      if (state.me && state.me.status === "active") await loadRooms();
      break;
    case "account": case "resync":
      await enter();
      break;
    case "safety.request": case "safety.close":
      await loadSafety();
      break;
    case "safety.answered":     // another device of this person answered; keep a details form being filled
      if (!document.querySelector("#safety details.more[open]")) await loadSafety();
      break;
    case "safety.remind":
      await loadSafety();
      alertText(t("safety.pleaseAnswer"));
      break;
    case "safety.rollup":
      if (rollupsOpen.has(e.check_id)) await showRollup(e.check_id);
      break;
    default:
      break;
  }
}

// --- language ---------------------------------------------------------------------------------------

// The button names the other language in that language ("English" / "日本語"); the choice is kept on
// this device. Text built from server data is drawn again; the rest is re-translated in place.
$("lang-switch").addEventListener("click", () => setLang(getLang() === "ja" ? "en" : "ja"));

function langNotes() {
  $("privacy-lang-note").hidden = getLang() === "ja";
}

onLangChange(async () => {
  langNotes();
  renderInvited();
  renderWho();
  if ($("view-chat").hidden || !state.me) return;
  renderRoomList();
  try {
    if (state.room) await refreshRoom();
    if ($("members-toggle").getAttribute("aria-expanded") === "true") await showMembers();
    await loadSafety();
  } catch (e) { alertText(e.message); }
});

// --- start ----------------------------------------------------------------------------------------

apply();
langNotes();

(async () => {
  const token = location.pathname === "/enrol" ? location.hash.slice(1) : "";
  if (location.pathname === "/enrol" && token) { await startEnrol(token); return; }
  try { await enter(); } catch (e) { startLogin(); }
})();
