// The room list, grouped 部署・職層・プロジェクト・DM・お知らせ, with unread and mention badges.
import { clear, h, plain, srOnly } from "../dom.js";
import { t } from "../i18n.js";
import { state } from "../state.js";

export const GROUPS = ["department", "rank", "project", "dm", "announcement"];

/** A DM is named after its members; show the others, not me. */
export function roomTitle(room) {
  if (room.kind !== "dm") return plain(room.name);
  const mine = plain(state.me?.staff?.display_name || "");
  const others = plain(room.name).split("、").filter((n) => n && n !== mine);
  return others.join("、") || plain(room.name);
}

let createHandler = null;

/** What 「ルームを作成」 does (app.js opens the dialog). */
export function onCreateRoom(fn) {
  createHandler = fn;
}

export function renderSidebar(nav) {
  clear(nav);
  nav.append(h("h2", { class: "visually-hidden", text: t("sidebar.heading") }));
  if (createHandler) {
    nav.append(h("div", { class: "sidebar-tools" },
      h("button", { type: "button", class: "button side-button", id: "create-room", "aria-haspopup": "dialog",
        text: t("rooms.new.open"), on: { click: () => createHandler() } })));
  }
  const rooms = [...state.rooms.values()].filter((r) => !r.archived || r.id === state.currentRoomId);
  for (const kind of GROUPS) {
    const items = rooms.filter((r) => r.kind === kind);
    if (!items.length) continue;
    const headingId = `group-${kind}`;
    const unreadInGroup = items.reduce((n, r) => n + (r.unread || 0), 0);
    nav.append(h("section", { class: "room-group", "aria-labelledby": headingId },
      h("h3", { id: headingId, class: "room-group-title" }, t(`kind.${kind}`),
        unreadInGroup ? srOnly(t("sidebar.groupUnread", { count: unreadInGroup })) : null),
      h("ul", { class: "room-list" }, items.map(roomItem))));
  }
  if (!rooms.length) nav.append(h("p", { class: "empty", text: t("sidebar.noRooms") }));
}

function roomItem(room) {
  const current = room.id === state.currentRoomId;
  const unread = room.unread || 0;
  const mentions = room.unread_mentions || 0;
  return h("li", {},
    h("a", { href: `#/room/${room.id}`, class: `room-link${unread ? " has-unread" : ""}`,
      "aria-current": current ? "page" : null, dataset: { roomId: String(room.id) } },
    h("span", { class: "room-name", text: roomTitle(room) }),
    room.crossing_policy && room.crossing_policy !== "lgwan_only"
      ? h("span", { class: "room-flag", title: t(`crossing.${room.crossing_policy}`), "aria-hidden": "true",
        text: t("sidebar.crossingMark") }) : null,
    mentions ? h("span", { class: "badge mention", "aria-hidden": "true", text: `@${mentions}` }) : null,
    unread ? h("span", { class: "badge", "aria-hidden": "true", text: unread > 99 ? "99+" : String(unread) }) : null,
    unread ? srOnly(mentions ? t("sidebar.unreadMentions", { count: unread, mentions })
      : t("sidebar.unread", { count: unread })) : null));
}

export function totals() {
  let unread = 0;
  let mentions = 0;
  for (const r of state.rooms.values()) {
    unread += r.unread || 0;
    mentions += r.unread_mentions || 0;
  }
  return { unread, mentions };
}
