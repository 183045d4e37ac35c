// Guests of a room (issue 5, 届け出制). In a room whose crossing policy is "guests", an owner invites
// someone from outside the organisation and hands the one-time link over out of band (mail, phone);
// on the relay the guest sets a password and TOTP and acknowledges the 利用目的 notice; the owner then
// approves. Re-invite (a new link; the old one stops working) and remove from here too.
import { del, get, post } from "../api.js";
import { confirmDialog } from "../dialog.js";
import { clear, h, plain } from "../dom.js";
import { fullTime } from "../format.js";
import { t } from "../i18n.js";
import { isAdmin } from "../state.js";
import { field, oneTimeLink, result } from "../widgets.js";

const OPEN = new Set(["invited", "enrolled", "active"]);

/** The server lets a guest's inviter, an owner of a room they are in, or an org admin manage them. */
export function canManageGuests(room) {
  return room.role === "owner" || isAdmin();
}

function guestLabel(g) {
  return g.affiliation ? t("guests.nameWithOrg", { name: plain(g.display_name), org: plain(g.affiliation) })
    : plain(g.display_name);
}

/** The side-panel content: how it works, the invite form (owners), the guests with their status. */
export async function guestsPanel(room) {
  const manage = canManageGuests(room);
  const out = h("p", { role: "status" });
  const linkArea = h("div", { class: "link-area" });
  const countLine = h("p", { class: "result-count", role: "status" });
  const list = h("ul", { class: "guest-list", "aria-labelledby": "guests-list-h" });
  let guests = [];

  const showLink = (res, titleKey) => {
    const box = oneTimeLink({ titleKey, vars: { name: guestLabel(res.guest) }, url: res.invite_url,
      expiresAt: res.invite_expires_at, noteKey: "guests.linkNote" });
    clear(linkArea).append(box);
    box.input.focus();
  };

  const focusGuest = (id) => {
    const heading = list.querySelector(`li[data-guest-id="${id}"] .guest-name`);
    (heading || countLine).focus?.();
  };

  const act = async (g, fn, doneKey) => {
    try {
      const res = await fn();
      result(out, t(doneKey, { name: guestLabel(g) }));
      await load();
      return res;
    } catch (err) {
      result(out, err.userMessage, false);
      return null;
    }
  };

  const actions = (g) => {
    const name = guestLabel(g);
    const button = (key, cls, handler) => h("button", { type: "button", class: `button small ${cls}`, text: t(`guests.${key}`),
      "aria-label": t(`guests.${key}Label`, { name }), on: { click: handler } });
    const buttons = [];
    if (g.status === "enrolled") {
      buttons.push(button("approve", "primary", async () => {
        const ok = await confirmDialog({ title: t("guests.approveConfirm", { name }),
          message: t("guests.approveExplain", { time: fullTime(g.privacy_ack_at) }), confirmLabel: t("guests.approve") });
        if (!ok) return;
        if (await act(g, () => post(`/api/guests/${g.id}/approve`, {}), "guests.approveDone")) focusGuest(g.id);
      }));
    }
    if (OPEN.has(g.status)) {
      buttons.push(button("reinvite", "secondary", async () => {
        const ok = await confirmDialog({ title: t("guests.reinviteConfirm", { name }), message: t("guests.reinviteExplain"),
          confirmLabel: t("guests.reinvite") });
        if (!ok) return;
        const res = await act(g, () => post(`/api/guests/${g.id}/reinvite`, {}), "guests.reinviteDone");
        if (res) showLink(res, "guests.linkTitleAgain");
      }));
      buttons.push(button("remove", "danger-outline", async () => {
        const ok = await confirmDialog({ title: t("guests.removeConfirm", { name }), message: t("guests.removeExplain"),
          confirmLabel: t("guests.remove"), danger: true });
        if (!ok) return;
        if (await act(g, () => del(`/api/guests/${g.id}`), "guests.removeDone")) countLine.focus();
      }));
    }
    return buttons.length ? h("div", { class: "row-actions" }, buttons) : null;
  };

  const item = (g) => {
    const facts = [
      ["guests.fact.invited", g.created_at],
      g.status === "invited" ? ["guests.fact.inviteExpires", g.invite_expires_at] : null,
      ["guests.fact.privacyAck", g.privacy_ack_at],
      ["guests.fact.enrolled", g.enrolled_at],
      ["guests.fact.approved", g.approved_at],
      OPEN.has(g.status) ? ["guests.fact.expires", g.expires_at] : null,
    ].filter((f) => f && f[1]);
    return h("li", { class: `guest-item guest-${g.status}`, dataset: { guestId: String(g.id), status: g.status } },
      h("h4", { class: "guest-name", tabindex: "-1" }, h("span", { class: "person-name", text: g.display_name }),
        g.affiliation ? h("span", { class: "affiliation", text: g.affiliation }) : null),
      h("p", { class: "guest-state" }, h("span", { class: `tag guest-status status-guest-${g.status}`,
        text: t(`guests.status.${g.status}`) }), " ", h("span", { class: "hint", text: t(`guests.statusHelp.${g.status}`) })),
      facts.length ? h("dl", { class: "guest-facts" }, facts.map(([k, v]) => [h("dt", { text: t(k) }),
        h("dd", { text: fullTime(v) })])) : null,
      manage ? actions(g) : null);
  };

  const draw = () => {
    // Ended guests (removed, expired) stay listed for the record; the count is of those with access.
    const open = guests.filter((g) => OPEN.has(g.status)).length;
    const ended = guests.length - open;
    const waiting = guests.filter((g) => g.status === "enrolled").length;
    countLine.textContent = !guests.length ? t("guests.none")
      : [waiting ? t("guests.count", { count: open, waiting }) : t("guests.countAll", { count: open }),
        ended ? t("guests.ended", { count: ended }) : ""].join(" ").trim();
    clear(list).append(...guests.map(item));
  };

  const load = async () => {
    guests = (await get(`/api/rooms/${room.id}/guests`)).guests;
    draw();
  };

  let form = null;
  if (manage) {
    const name = h("input", { id: "guest-name", class: "input", maxlength: "100", required: true, autocomplete: "off" });
    const org = h("input", { id: "guest-org", class: "input", maxlength: "200", autocomplete: "off" });
    const submit = h("button", { type: "submit", class: "button primary", text: t("guests.inviteSubmit") });
    form = h("form", { class: "form card guest-invite", "aria-labelledby": "guests-invite-h", novalidate: true, on: { submit: async (ev) => {
      ev.preventDefault();
      if (!name.value.trim()) {
        result(out, t("guests.needName"), false);
        name.focus();
        return;
      }
      submit.disabled = true;
      try {
        const res = await post(`/api/rooms/${room.id}/guests`, { display_name: name.value.trim(), affiliation: org.value.trim() });
        form.reset();
        result(out, t("guests.inviteDone", { name: guestLabel(res.guest) }));
        await load();
        showLink(res, "guests.linkTitle");
      } catch (err) {
        result(out, err.userMessage, false);
      } finally {
        submit.disabled = false;
      }
    } } },
    h("h3", { id: "guests-invite-h", text: t("guests.inviteHeading") }),
    field(name, "guests.name", { hint: "guests.nameHint" }), field(org, "guests.org", { hint: "guests.orgHint" }),
    h("div", { class: "form-actions" }, submit));
  }

  const panel = h("div", { class: "panel-pad guests-panel" },
    h("details", { class: "guest-howto" }, h("summary", { text: t("guests.howTo") }),
      h("ol", { class: "steps" }, ["1", "2", "3", "4"].map((n) => h("li", { text: t(`guests.step${n}`) })))),
    manage ? null : h("p", { class: "hint", text: t("guests.ownersOnly") }),
    form, out, linkArea,
    h("h3", { id: "guests-list-h", text: t("guests.listHeading") }), countLine, list);
  countLine.setAttribute("tabindex", "-1");
  panel.refresh = load;
  panel.roomId = room.id;
  await load();
  return panel;
}
