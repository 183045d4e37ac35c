// The signed-in app: top bar, room sidebar, the main area (a room or the admin screens) and the
// side panel (thread or search results). Routes: #/room/<id>, #/admin/<section>.
import { get, post } from "../api.js";
import { clear, h, plain } from "../dom.js";
import { onLangChange, t } from "../i18n.js";
import { Live } from "../live.js";
import { announce, desktopNotify, setTitleBadge } from "../notify.js";
import { loadPrefs } from "../prefs.js";
import { canAudit, state } from "../state.js";
import { searchPanel, showProfile, showReceipts, showSettings } from "./panels.js";
import { RoomView } from "./room.js";
import { alerts } from "./alerts.js";
import { createRoomDialog } from "./roomtools.js";
import { onCreateRoom, renderSidebar, roomTitle, totals } from "./sidebar.js";
import { ThreadView } from "./thread.js";

let live = null;
let shell = null;
let callbacks = null;
let pendingReveal = null;

const hooks = {
  openThread: (msg) => openThread(msg),
  openReceipts: (msg) => showReceipts(msg).catch((err) => announce(err.userMessage, { assertive: true })),
  openProfile: (id) => showProfile(id, { openRoom: (roomId) => navigate(`#/room/${roomId}`) })
    .catch((err) => announce(err.userMessage, { assertive: true })),
  roomRead: (roomId) => roomRead(roomId),
  openPanel: (title, make) => openPanel(title, make),
};
let panelView = null;   // the open tool panel (pins, polls, tasks, guests) for live refreshes

onCreateRoom(() => createRoomDialog({ onCreated: async (room) => {
  await refreshRooms();
  navigate(`#/room/${room.id}`);
} }));

export function stopApp() {
  alerts.stop();
  if (live) live.stop();
  live = null;
  window.removeEventListener("hashchange", route);
  document.removeEventListener("visibilitychange", onVisibility);
  state.roomView?.destroy();
  Object.assign(state, { me: null, currentRoomId: null, roomView: null, threadView: null });
  state.rooms.clear();
  state.memberCache.clear();
  state.cardCache.clear();
  shell = null;
}

export async function startApp(root, me, cbs) {
  callbacks = cbs;
  state.me = me;
  state.prefs = loadPrefs();
  await refreshRooms();
  buildShell(root);
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", onVisibility);
  live = new Live({
    event: onEvent,
    resync: () => resync(),
    sessionEnded: () => sessionEnded(),
    status: (online) => setOnline(online),
    checkSession: async () => {
      try {
        await get("/api/auth/me", { quiet401: true });
        return true;
      } catch (err) {
        return err.status !== 401;
      }
    },
  });
  live.start();
  route();
  alerts.start(shell.alerts, { navigate });
}

onLangChange(() => {
  if (shell && state.me) {
    const root = shell.root;
    buildShell(root);
    route(true);
  }
});

function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

// --- shell ------------------------------------------------------------------------------------

function buildShell(root) {
  clear(root);
  const me = state.me;
  const searchInput = h("input", { id: "search-input", type: "search", class: "input", maxlength: "200",
    placeholder: t("search.placeholder"), autocomplete: "off" });
  const status = h("span", { class: "conn-status", role: "status", text: t("conn.connecting") });
  const sidebar = h("nav", { id: "sidebar", class: "sidebar", "aria-label": t("sidebar.heading") });
  const menuToggle = h("button", { type: "button", class: "button icon menu-toggle", "aria-controls": "sidebar",
    "aria-expanded": "false", text: t("nav.rooms"), on: { click: () => toggleSidebar() } });
  const main = h("main", { id: "main", class: "main", tabindex: "-1" });
  const sideTitle = h("h2", { id: "side-title", class: "side-title" });
  const sideBody = h("div", { class: "side-body" });
  const side = h("aside", { id: "side-panel", class: "side-panel", hidden: true, "aria-labelledby": "side-title" },
    h("div", { class: "side-header" }, sideTitle,
      h("button", { type: "button", class: "button secondary small", text: t("common.close"),
        on: { click: () => closeSide() } })),
    sideBody);
  const skip = h("a", { href: "#main", class: "skip-link", text: t("nav.skipToComposer"), on: { click: (ev) => {
    ev.preventDefault();
    (document.getElementById("composer-input") || main).focus();
  } } });
  const topbar = h("header", { class: "topbar" },
    menuToggle,
    h("p", { class: "brand" }, h("img", { src: "/static/img/icon.svg", alt: "", class: "brand-icon" }),
      h("span", { class: "brand-name", text: t("app.title") }),
      h("span", { class: "org-name", text: me.org.name })),
    h("form", { class: "search", role: "search", on: { submit: (ev) => {
      ev.preventDefault();
      const q = searchInput.value.trim();
      if (q) openSearch(q);
    } } },
    h("label", { for: "search-input", class: "visually-hidden", text: t("search.label") }), searchInput,
    h("button", { type: "submit", class: "button secondary small", text: t("search.submit") })),
    status,
    h("div", { class: "topbar-actions" },
      h("a", { href: "#/work/tasks", class: "button secondary small", id: "work-link", text: t("nav.work") }),
      canAudit() ? h("a", { href: "#/admin/staff", class: "button secondary small", id: "admin-link",
        text: t("nav.admin") }) : null,
      h("button", { type: "button", class: "button secondary small", text: t("nav.settings"), "aria-haspopup": "dialog",
        on: { click: () => showSettings({ onChange: () => { renderSidebarKeepFocus(); route(true); } }) } }),
      h("button", { type: "button", class: "button secondary small me-button", "aria-haspopup": "dialog",
        "aria-label": t("nav.myProfile", { name: plain(me.staff.display_name) }), text: me.staff.display_name,
        on: { click: () => hooks.openProfile(me.staff.id) } }),
      h("button", { type: "button", class: "button secondary small", text: t("nav.logout"), on: { click: logout } })));
  const alertBox = h("div", { id: "alerts", class: "alerts" });
  root.append(skip, topbar, alertBox, h("div", { class: "layout" }, sidebar, main, side));
  shell = { root, sidebar, main, side, sideTitle, sideBody, status, menuToggle, searchInput, alerts: alertBox };
  alerts.mount(alertBox);
  renderSidebarKeepFocus();
  updateTitle();
}

function toggleSidebar(force) {
  const open = force ?? !shell.sidebar.classList.contains("open");
  shell.sidebar.classList.toggle("open", open);
  shell.menuToggle.setAttribute("aria-expanded", String(open));
  if (open) shell.sidebar.querySelector("a")?.focus();
}

function setOnline(online) {
  if (!shell) return;
  shell.status.textContent = online ? t("conn.online") : t("conn.reconnecting");
  shell.status.classList.toggle("offline", !online);
}

/** Re-render the room list without losing the keyboard focus on a room link. */
function renderSidebarKeepFocus() {
  if (!shell) return;
  const focusedRoom = document.activeElement?.dataset?.roomId;
  renderSidebar(shell.sidebar);
  if (focusedRoom) shell.sidebar.querySelector(`a[data-room-id="${CSS.escape(focusedRoom)}"]`)?.focus();
}

function updateTitle() {
  const { unread, mentions } = totals();
  setTitleBadge(unread, mentions);
}

async function logout() {
  try {
    await post("/api/auth/logout", {});
  } catch {
    // the session may already be gone
  }
  stopApp();
  callbacks.onLogout();
}

function sessionEnded() {
  stopApp();
  callbacks.onLogout(t("login.sessionEnded"));
}

// --- routing ----------------------------------------------------------------------------------

async function route(force = false) {
  if (!shell) return;
  const hash = window.location.hash;
  let m = hash.match(/^#\/room\/(\d+)$/);
  if (m) {
    await openRoom(Number(m[1]), force === true);
    return;
  }
  m = hash.match(/^#\/admin(?:\/([a-z]+))?$/);
  if (m && canAudit()) {
    await openAdmin(m[1] || "staff");
    return;
  }
  m = hash.match(/^#\/work(?:\/([a-z]+)(?:\/(\d+))?)?$/);
  if (m) {
    await openWork(m[1] || "tasks", m[2] ? Number(m[2]) : null);
    return;
  }
  const rooms = [...state.rooms.values()];
  const first = rooms.find((r) => r.unread_mentions) || rooms.find((r) => r.kind === "project") || rooms[0];
  if (first) window.location.replace(`#/room/${first.id}`);
  else clear(shell.main).append(h("p", { class: "empty", text: t("sidebar.noRooms") }));
}

async function openRoom(roomId, force) {
  const room = state.rooms.get(roomId);
  if (!room) {
    clear(shell.main).append(h("p", { class: "empty", role: "alert", text: t("room.notFound") }));
    return;
  }
  if (!force && state.roomView && state.currentRoomId === roomId) return;
  const opener = document.activeElement;
  state.roomView?.destroy();
  if (state.threadView && state.threadView.roomId !== roomId) closeSide();
  state.currentRoomId = roomId;
  const view = new RoomView(room, hooks);
  state.roomView = view;
  clear(shell.main).append(view.el);
  toggleSidebar(false);
  renderSidebarKeepFocus();
  announce(t("room.opened", { room: roomTitle(room) }));
  try {
    await view.load();
  } catch (err) {
    announce(err.userMessage, { assertive: true });
    return;
  }
  if (state.roomView !== view) return;
  if (pendingReveal && pendingReveal.room_id === roomId) {
    const target = pendingReveal;
    pendingReveal = null;
    if (await view.reveal(target.id, target.seq)) return;
  }
  // Move focus into the room only if the person has not moved on while it loaded.
  const active = document.activeElement;
  const stillOpener = active === opener || (active?.dataset?.roomId && active.dataset.roomId === String(roomId));
  if (!active || active === document.body || stillOpener) {
    if (room.can_post !== false) view.composer.focus();
    else view.timeline.focus();
  }
}

async function openWork(section, id) {
  state.roomView?.destroy();
  state.roomView = null;
  state.currentRoomId = null;
  closeSide();
  renderSidebarKeepFocus();
  const { renderWork } = await import("./work.js");
  await renderWork(shell.main, section, id);
}

async function openAdmin(section) {
  state.roomView?.destroy();
  state.roomView = null;
  state.currentRoomId = null;
  closeSide();
  renderSidebarKeepFocus();
  const { renderAdmin } = await import("./admin.js");
  await renderAdmin(shell.main, section);
}

// --- side panel: thread and search ------------------------------------------------------------

function openSide(title, content) {
  shell.sideTitle.textContent = title;
  clear(shell.sideBody).append(content);
  shell.side.hidden = false;
  document.body.classList.add("side-open");
}

function closeSide() {
  if (!shell) return;
  const opener = state.threadView?.opener || panelView?.opener;
  state.threadView = null;
  panelView = null;
  shell.side.hidden = true;
  clear(shell.sideBody);
  document.body.classList.remove("side-open");
  if (opener?.isConnected) opener.focus();
}

/** A tool panel (pins, polls, tasks) in the side panel; make() builds its content. */
async function openPanel(title, make) {
  const opener = document.activeElement;
  state.threadView = null;
  openSide(title, h("p", { text: t("common.loading") }));
  const view = { opener, make, title };
  panelView = view;
  try {
    const content = await make();
    if (panelView !== view) return;
    view.content = content;
    clear(shell.sideBody).append(content);
    shell.sideTitle.setAttribute("tabindex", "-1");
    shell.sideTitle.focus();
  } catch (err) {
    clear(shell.sideBody).append(h("p", { class: "form-error", role: "alert", text: err.userMessage }));
  }
}

async function openThread(msg) {
  const opener = document.activeElement;
  const view = new ThreadView(msg, state.rooms.get(msg.room_id), hooks);
  view.opener = opener;
  state.threadView = view;
  openSide(t("thread.title"), view.el);
  try {
    await view.load();
  } catch (err) {
    announce(err.userMessage, { assertive: true });
  }
  view.composer.focus();
}

async function openSearch(query) {
  state.threadView = null;
  panelView = null;
  openSide(t("search.title", { query }), h("p", { text: t("common.loading") }));
  try {
    const content = await searchPanel(query, { openMessage: (m) => {
      pendingReveal = m;
      if (state.currentRoomId === m.room_id && state.roomView) {
        pendingReveal = null;
        state.roomView.reveal(m.id, m.seq);
      } else navigate(`#/room/${m.room_id}`);
    } });
    clear(shell.sideBody).append(content);
  } catch (err) {
    clear(shell.sideBody).append(h("p", { class: "form-error", role: "alert", text: err.userMessage }));
  }
}

// --- live events ------------------------------------------------------------------------------

async function refreshRooms() {
  const data = await get("/api/rooms");
  const seen = new Set();
  for (const r of data.rooms) {
    seen.add(r.id);
    const existing = state.rooms.get(r.id);
    if (existing) Object.assign(existing, r); else state.rooms.set(r.id, r);
  }
  for (const id of [...state.rooms.keys()]) if (!seen.has(id)) state.rooms.delete(id);
  renderSidebarKeepFocus();
  updateTitle();
}

async function resync() {
  await refreshRooms();
  if (state.currentRoomId) await openRoom(state.currentRoomId, true);
}

function roomRead(roomId) {
  const room = state.rooms.get(roomId);
  if (!room) return;
  if (room.unread || room.unread_mentions) {
    room.unread = 0;
    room.unread_mentions = 0;
    renderSidebarKeepFocus();
  }
  updateTitle();
}

function onVisibility() {
  if (document.visibilityState === "visible") state.roomView?.markRead();
}

function messageViews(id) {
  return [state.roomView?.views.get(id), state.threadView?.views.get(id)].filter(Boolean);
}

function onEvent(frame) {
  const d = frame.data || {};
  switch (frame.type) {
    case "message.new": onNewMessage(d); break;
    case "thread.reply":
      for (const v of messageViews(d.root_id)) if (!v.inThread) v.setReplyCount((v.msg.reply_count || 0) + 1);
      break;
    case "receipt":
      for (const view of [state.roomView, state.threadView]) {
        if (!view || (view.room ? view.room.id : view.roomId) !== d.room_id) continue;
        for (const v of view.views.values()) v.applyReceipt(d.staff_id, d.from_seq, d.to_seq);
      }
      break;
    case "reaction.add":
    case "reaction.remove":
      for (const v of messageViews(d.message_id)) v.applyReaction(d.code, d.staff_id, frame.type === "reaction.add");
      break;
    case "message.edit":
      for (const v of messageViews(d.id)) v.edit(d.body, d.edited_at);
      break;
    case "message.delete":
      for (const v of messageViews(d.id)) v.markDeleted();
      break;
    case "pin.add":
    case "pin.remove":
      for (const v of messageViews(d.message_id)) v.patch({ pinned: frame.type === "pin.add" });
      break;
    case "records.marked":
      onRecordMarked(d);
      break;
    case "ack.request":
      for (const v of messageViews(d.message_id)) v.patch({ ack_requested: true });
      break;
    case "poll.new":
    case "poll.vote":
    case "poll.closed":
      onPollEvent(frame.type, d);
      break;
    case "safety.request":
    case "safety.reminder":
    case "safety.answer":
    case "broadcast.new":
    case "broadcast.reminder":
    case "broadcast.receipt":
    case "notice.new":
    case "task.new":
    case "task.update":
    case "task.reminder":
    case "ack.reminder":
    case "records.notice":
    case "device.request":
      alerts.onEvent(frame.type, d);
      break;
    case "guest.enrolled":
      onGuestEnrolled(d);
      break;
    case "member.join":
    case "member.leave":
    case "member.role":
      state.memberCache.delete(frame.room_id);
      if (d.staff_id === state.me.staff.id) refreshRooms();
      break;
    case "room.update":
    case "room.joined":
    case "room.left":
      refreshRooms().then(() => {
        if (frame.type === "room.left" && d.room_id === state.currentRoomId) navigate("#/");
      });
      break;
    default:
      break;
  }
}

function onRecordMarked(d) {
  // a mark on a thread covers its replies too: refresh every view in that room that the mark covers
  for (const view of [state.roomView, state.threadView]) {
    if (!view) continue;
    for (const v of view.views.values()) {
      const covered = v.msg.id === d.message_id || (d.scope === "thread" && v.msg.thread_root_id === d.message_id);
      if (covered && !v.msg.record) {
        v.patch({ record: { mark_id: d.mark_id, scope: d.scope, title: "", retain_until: d.retain_until,
          class_label: d.class } });
      }
    }
  }
}

/** A guest I invited finished enrolment on the relay: say so, and refresh an open guests panel. */
async function onGuestEnrolled(d) {
  if (panelView?.content?.classList?.contains("guests-panel")) {
    panelView.content.refresh().catch(() => {});
  }
  try {
    const guest = await get(`/api/guests/${d.guest_id}`);
    announce(t("guests.enrolledNotice", { name: plain(guest.display_name) }));
  } catch {
    announce(t("guests.enrolledNoticeAnon"));
  }
}

function onPollEvent(type, d) {
  const room = state.rooms.get(d.room_id ?? d.room);
  if (type === "poll.new" && room && d.created_by !== state.me.staff.id) {
    announce(t("polls.newIn", { room: roomTitle(room), question: plain(d.question) }));
  }
  if (panelView?.content?.classList?.contains("polls-panel") && panelView.content.roomId === d.room_id) {
    if (type === "poll.new") {
      const view = panelView;
      view.make().then((content) => {
        if (panelView !== view) return;
        view.content = content;
        clear(shell.sideBody).append(content);
      });
    } else panelView.content.refreshPoll(d.poll_id);
  }
}

function onNewMessage(msg) {
  const room = state.rooms.get(msg.room_id);
  if (!room) {
    refreshRooms();
    return;
  }
  const meId = state.me.staff.id;
  const mine = msg.sender.id === meId;
  const isCurrent = state.roomView && state.currentRoomId === msg.room_id;
  room.last_seq = Math.max(room.last_seq || 0, msg.seq);
  if (isCurrent) state.roomView.onNewMessage(msg);
  state.threadView?.onNewMessage(msg);
  if (mine) return;
  const mentioned = (msg.mentions || []).includes(meId) || msg.mention_room;
  const seen = isCurrent && document.visibilityState === "visible";
  if (!seen) {
    room.unread = (room.unread || 0) + 1;
    if (mentioned) room.unread_mentions = (room.unread_mentions || 0) + 1;
    renderSidebarKeepFocus();
    updateTitle();
    if (mentioned && !isCurrent) {
      announce(t("notify.mention", { room: roomTitle(room), sender: plain(msg.sender.display_name) }));
    }
  }
  const pref = state.prefs.notify;
  const wants = pref === "all" || (pref === "mentions" && (mentioned || room.kind === "dm"));
  if (wants && (!seen || document.hidden)) {
    desktopNotify(mentioned ? t("notify.mentionTitle", { room: roomTitle(room) }) : roomTitle(room),
      `${plain(msg.sender.display_name)}: ${plain(msg.body)}`, `room-${room.id}`,
      () => navigate(`#/room/${room.id}`));
  }
}

