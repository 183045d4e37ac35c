// Notifications: the title badge, the Notification API (opt-in), and the ARIA live announcer.
import { h, plain } from "./dom.js";
import { t } from "./i18n.js";

let politeRegion = null;
let assertiveRegion = null;

/** Create the two live regions once; they must exist before anything is announced. */
export function mountAnnouncers(parent) {
  politeRegion = h("div", { class: "visually-hidden", "aria-live": "polite", "aria-atomic": "false",
    id: "announcer" });
  assertiveRegion = h("div", { class: "visually-hidden", role: "alert", id: "alerter" });
  parent.append(politeRegion, assertiveRegion);
}

/** Say something to screen readers (new messages, results, errors). */
export function announce(text, { assertive = false } = {}) {
  const region = assertive ? assertiveRegion : politeRegion;
  if (!region) return;
  const line = h("p", { text });
  region.append(line);
  // keep the region short: old lines go after a while (they have been read by then)
  setTimeout(() => line.remove(), 15000);
  while (region.childNodes.length > 5) region.firstChild.remove();
}

/** "(3) 架け橋" when there are unread messages; the plain title otherwise. */
export function setTitleBadge(unread, mentions) {
  const base = t("app.title");
  if (mentions > 0) document.title = t("app.titleMentions", { count: unread, mentions, title: base });
  else if (unread > 0) document.title = t("app.titleUnread", { count: unread, title: base });
  else document.title = base;
}

export function notificationsSupported() {
  return "Notification" in window;
}

export async function requestPermission() {
  if (!notificationsSupported()) return "unsupported";
  if (Notification.permission === "granted" || Notification.permission === "denied") return Notification.permission;
  return Notification.requestPermission();
}

/** Desktop notification (only when permitted); clicking it focuses the window and runs onClick. */
export function desktopNotify(title, body, tag, onClick) {
  if (!notificationsSupported() || Notification.permission !== "granted") return;
  try {
    const n = new Notification(plain(title), { body: plain(body).slice(0, 140), tag, silent: false });
    n.addEventListener("click", () => {
      window.focus();
      onClick?.();
      n.close();
    });
  } catch {
    // some platforms only allow notifications from a service worker; the title badge still shows
  }
}
