// Admin screens for the internet relay (issue 5). スマートフォン・端末 (org admins, 届け出制): which staff
// may use the relay from a phone (grant, with a one-time enrolment link, and revoke), the devices that
// wait for approval (approve, refuse, revoke), and whether guests' devices need approval too (a config
// setting, shown read-only). 中継サーバー連携 (server admins): the link's state, queue depth and lag,
// and 緊急遮断 (pause), resume and resync.
import { del, get, post, put } from "../api.js";
import { confirmDialog } from "../dialog.js";
import { append, clear, h, plain } from "../dom.js";
import { fullTime } from "../format.js";
import { t } from "../i18n.js";
import { oneTimeLink, result } from "../widgets.js";

const OPEN_GRANT = new Set(["granted", "active"]);

function cell(text) {
  return h("td", { text: text || "" });
}

function stateTag(kind, status) {
  return h("span", { class: `tag ${kind}-status status-${kind}-${status}`, text: t(`phones.${kind}.${status}`) });
}

/**
 * スマートフォン・端末. helpers: {allStaff(status) → staff[]} (admin.js pages through /api/admin/staff).
 */
export async function renderPhones(body, { allStaff }) {
  const [mobile, staff, deps] = await Promise.all([get("/api/admin/mobile"), allStaff(), get("/api/departments")]);
  const depName = new Map(deps.departments.map((d) => [d.id, d.name]));
  const people = new Map(staff.map((s) => [s.id, s]));
  const guestNames = new Map();   // guest id -> "name（ゲスト・org）" (guests are not in the staff list)
  let grants = mobile.grants;

  const grantsOut = h("p", { role: "status" });
  const linkArea = h("div", { class: "link-area" });
  const grantsBox = h("div", { class: "table-wrap" });
  const who = h("select", { id: "mobile-staff", class: "input" });
  const grantButton = h("button", { type: "submit", class: "button primary", text: t("phones.grantSubmit"),
    disabled: !mobile.bridge_enabled });

  const personName = (id) => {
    const s = people.get(id);
    if (s) return plain(s.display_name);
    return guestNames.get(id) || t("phones.unknownPerson", { id });
  };

  const fillChoices = () => {
    const open = new Set(grants.filter((g) => OPEN_GRANT.has(g.status)).map((g) => g.staff_id));
    const choices = staff.filter((s) => s.status === "active" && !open.has(s.id));
    append(clear(who), [h("option", { value: "", text: t("phones.choose") }),
      choices.map((s) => h("option", { value: String(s.id),
        text: t("phones.staffOption", { name: plain(s.display_name), login: plain(s.login),
          department: depName.get(s.department_id) || t("phones.noDepartment") }) }))]);
  };

  const showLink = (res, staffId) => {
    const box = oneTimeLink({ titleKey: "phones.linkTitle", vars: { name: personName(staffId) }, url: res.enrol_url,
      expiresAt: res.enrol_expires_at, noteKey: "phones.linkNote" });
    clear(linkArea).append(box);
    box.input.focus();
  };

  const grant = async (staffId, reissue) => {
    try {
      const res = await put(`/api/admin/staff/${staffId}/mobile`, {});
      result(grantsOut, t(reissue ? "phones.reissueDone" : "phones.grantDone", { name: personName(staffId) }));
      await loadGrants();
      showLink(res, staffId);
    } catch (err) {
      result(grantsOut, err.userMessage, false);
    }
  };

  const grantActions = (g) => {
    const name = personName(g.staff_id);
    const button = (key, cls, handler) => h("button", { type: "button", class: `button small ${cls}`,
      text: t(`phones.${key}`), "aria-label": t(`phones.${key}Label`, { name }), disabled: !mobile.bridge_enabled,
      on: { click: handler } });
    const buttons = [];
    if (OPEN_GRANT.has(g.status)) {
      buttons.push(button("reissue", "secondary", async () => {
        const ok = await confirmDialog({ title: t("phones.reissueConfirm", { name }), message: t("phones.reissueExplain"),
          confirmLabel: t("phones.reissue") });
        if (ok) await grant(g.staff_id, true);
      }));
      buttons.push(button("revokeMobile", "danger-outline", async () => {
        const ok = await confirmDialog({ title: t("phones.revokeMobileConfirm", { name }),
          message: t("phones.revokeMobileExplain"), confirmLabel: t("phones.revokeMobile"), danger: true });
        if (!ok) return;
        try {
          await del(`/api/admin/staff/${g.staff_id}/mobile`);
          result(grantsOut, t("phones.revokeMobileDone", { name }));
          await Promise.all([loadGrants(), loadDevices()]);
        } catch (err) {
          result(grantsOut, err.userMessage, false);
        }
      }));
    } else {
      buttons.push(button("regrant", "secondary", () => grant(g.staff_id, false)));
    }
    return h("div", { class: "row-actions" }, buttons);
  };

  const drawGrants = () => {
    const rows = [...grants].sort((a, b) => ["granted", "active", "revoked"].indexOf(a.status)
      - ["granted", "active", "revoked"].indexOf(b.status) || a.staff_id - b.staff_id);
    const inUse = grants.filter((g) => OPEN_GRANT.has(g.status)).length;
    clear(grantsBox).append(rows.length ? h("table", { class: "table compact mobile-table" },
      h("caption", { text: t("phones.grantsCaption", { count: inUse }) }),
      h("thead", {}, h("tr", {}, ["name", "login", "department", "state", "granted", "enrolled", "actions"]
        .map((c) => h("th", { scope: "col", text: t(`phones.grants.col.${c}`) })))),
      h("tbody", {}, rows.map((g) => {
        const s = people.get(g.staff_id);
        return h("tr", { dataset: { staffId: String(g.staff_id), status: g.status } },
          h("th", { scope: "row", text: personName(g.staff_id) }),
          cell(s ? s.login : ""), cell(s ? depName.get(s.department_id) : ""),
          h("td", {}, stateTag("grant", g.status)),
          cell(fullTime(g.granted_at)), cell(g.enrolled_at ? fullTime(g.enrolled_at) : ""),
          h("td", {}, grantActions(g)));
      }))) : h("p", { class: "empty", text: t("phones.noGrants") }));
    fillChoices();
  };

  const loadGrants = async () => {
    grants = (await get("/api/admin/mobile")).grants;
    drawGrants();
  };

  // --- devices ---------------------------------------------------------------------------------
  const devOut = h("p", { role: "status" });
  const devBox = h("div", { class: "table-wrap" });
  const pendingLine = h("p", { class: "pending-count", role: "status" });
  const filter = h("select", { id: "device-filter", class: "input input-small" },
    ["", "pending", "approved", "revoked"].map((s) => h("option", { value: s, text: s ? t(`phones.device.${s}`) : t("admin.all") })));

  const deviceActions = (d) => {
    const owner = personName(d.staff_id);
    const vars = { name: owner, device: plain(d.label) || t("phones.unknownDevice") };
    const decide = (key, approve, danger) => h("button", { type: "button",
      class: `button small ${approve ? "primary" : "danger-outline"}`, text: t(`phones.${key}`),
      "aria-label": t(`phones.${key}Label`, vars), disabled: !mobile.bridge_enabled, on: { click: async () => {
        const ok = await confirmDialog({ title: t(`phones.${key}Confirm`, vars), message: t(`phones.${key}Explain`),
          confirmLabel: t(`phones.${key}`), danger });
        if (!ok) return;
        try {
          await post(`/api/admin/devices/${d.device_id}/${approve ? "approve" : "revoke"}`, {});
          result(devOut, t(`phones.${key}Done`, vars));
          await loadDevices();
          pendingLine.focus();
        } catch (err) {
          result(devOut, err.userMessage, false);
        }
      } } });
    if (d.status === "pending") return h("div", { class: "row-actions" }, decide("approveDevice", true, false),
      decide("refuseDevice", false, true));
    if (d.status === "approved") return h("div", { class: "row-actions" }, decide("revokeDevice", false, true));
    return null;
  };

  const loadDevices = async () => {
    const all = (await get("/api/admin/devices?limit=200")).devices;
    const unknown = [...new Set(all.map((d) => d.staff_id))].filter((id) => !people.has(id) && !guestNames.has(id));
    await Promise.all(unknown.map(async (id) => {
      try {
        const g = await get(`/api/guests/${id}`);
        guestNames.set(id, g.affiliation ? t("phones.guestName", { name: plain(g.display_name), org: plain(g.affiliation) })
          : t("phones.guestNameNoOrg", { name: plain(g.display_name) }));
      } catch {
        guestNames.set(id, t("phones.unknownPerson", { id }));
      }
    }));
    const pending = all.filter((d) => d.status === "pending");
    pendingLine.textContent = pending.length ? t("phones.pendingCount", { count: pending.length }) : t("phones.noPending");
    pendingLine.classList.toggle("has-pending", pending.length > 0);
    // Waiting ones first: they are what an admin comes here for.
    const rows = all.filter((d) => !filter.value || d.status === filter.value)
      .sort((a, b) => (a.status === "pending" ? 0 : 1) - (b.status === "pending" ? 0 : 1));
    clear(devBox).append(rows.length ? h("table", { class: "table compact device-table" },
      h("caption", { text: t("phones.devicesCaption", { count: rows.length }) }),
      h("thead", {}, h("tr", {}, ["owner", "device", "state", "requested", "decided", "actions"]
        .map((c) => h("th", { scope: "col", text: t(`phones.devices.col.${c}`) })))),
      h("tbody", {}, rows.map((d) => h("tr", { dataset: { deviceId: d.device_id, status: d.status, staffId: String(d.staff_id) } },
        h("th", { scope: "row", text: personName(d.staff_id) }),
        cell(plain(d.label) || t("phones.unknownDevice")),
        h("td", {}, stateTag("device", d.status)),
        cell(fullTime(d.requested_at)), cell(d.decided_at ? fullTime(d.decided_at) : ""),
        h("td", {}, deviceActions(d)))))) : h("p", { class: "empty", text: t("phones.noDevices") }));
  };
  filter.addEventListener("change", () => loadDevices().catch((err) => result(devOut, err.userMessage, false)));
  // A device request that reaches LGWAN shows up here at once (the live event); off once the view is gone.
  const onLive = (ev) => {
    if (!body.isConnected) {
      window.removeEventListener("kk-event", onLive);
      return;
    }
    // (the phone's enrolment came first: its grant row changes too)
    if (ev.detail.type === "device.request") {
      Promise.all([loadGrants(), loadDevices()]).catch((err) => result(devOut, err.userMessage, false));
    }
  };
  window.addEventListener("kk-event", onLive);
  pendingLine.setAttribute("tabindex", "-1");

  append(body, [
    h("p", { class: "hint", text: t("admin.phones.help") }),
    mobile.bridge_enabled ? null : h("p", { class: "form-error", role: "alert", text: t("phones.bridgeOff") }),
    h("section", { class: "card", "aria-labelledby": "phones-grants-h" },
      h("h3", { id: "phones-grants-h", text: t("phones.grantsHeading") }),
      h("p", { class: "hint", text: t("phones.grantsHelp") }),
      h("form", { class: "form-inline", on: { submit: async (ev) => {
        ev.preventDefault();
        if (!who.value) {
          result(grantsOut, t("phones.chooseFirst"), false);
          who.focus();
          return;
        }
        await grant(Number(who.value), false);
      } } },
      h("div", { class: "field" }, h("label", { for: "mobile-staff", text: t("phones.staff") }), who),
      h("div", { class: "form-actions" }, grantButton)),
      grantsOut, linkArea, grantsBox),
    h("section", { class: "card", "aria-labelledby": "phones-devices-h" },
      h("h3", { id: "phones-devices-h", text: t("phones.devicesHeading") }),
      h("p", { class: "hint", text: t("phones.devicesHelp") }),
      pendingLine,
      h("div", { class: "filters" }, h("div", { class: "field" }, h("label", { for: "device-filter", text: t("phones.filter") }), filter),
        h("div", { class: "form-actions" }, h("button", { type: "button", class: "button secondary small", text: t("phones.reload"),
          on: { click: () => Promise.all([loadGrants(), loadDevices()]).catch((err) => result(devOut, err.userMessage, false)) } }))),
      devOut, devBox),
    h("section", { class: "card", "aria-labelledby": "phones-guestdev-h" },
      h("h3", { id: "phones-guestdev-h", text: t("phones.guestDevicesHeading") }),
      h("p", { id: "guest-device-approval", dataset: { value: String(mobile.guest_device_approval) },
        text: t(mobile.guest_device_approval ? "phones.guestDevicesOn" : "phones.guestDevicesOff") }),
      h("p", { class: "hint", text: t("phones.guestDevicesConfig") }))]);
  drawGrants();
  await loadDevices();
}

// --- 中継サーバー連携 ------------------------------------------------------------------------------

/** The relay link for server admins: state, depth and lag both ways, 緊急遮断 / 再開 / 再同期. */
export async function renderBridge(body) {
  const out = h("p", { role: "status" });
  const box = h("div", { class: "bridge-box" });
  body.append(h("p", { class: "hint", text: t("admin.bridge.help") }), out, box);
  const FACTS = ["since", "sessions", "depth", "lag", "outSeq", "inSeq", "counts", "lastError"];
  const values = new Map(FACTS.map((k) => [k, h("dd", { dataset: { fact: k } })]));
  const stateText = h("strong", {});
  const stateLine = h("p", { class: "bridge-state", id: "bridge-state" },
    h("span", { class: "bridge-state-label", text: t("bridge.state") }), " ", stateText);
  const actions = h("div", { class: "form-actions" });
  let paused = null;
  let timer = null;

  const control = (key, path, { danger = false, confirm = true } = {}) => h("button", { type: "button",
    class: `button ${danger ? "danger" : "secondary"}`, text: t(`bridge.${key}`), on: { click: async () => {
      if (confirm) {
        const ok = await confirmDialog({ title: t(`bridge.${key}Confirm`), message: t(`bridge.${key}Explain`),
          confirmLabel: t(`bridge.${key}`), danger });
        if (!ok) return;
      }
      try {
        await post(`/api/admin/bridge/${path}`, {});
        result(out, t(`bridge.${key}Done`));
        await load();
      } catch (err) {
        result(out, err.userMessage, false);
      }
    } } });

  // Values are updated in place, so a periodic refresh never takes the keyboard focus away; the
  // buttons are rebuilt only when pausing or resuming changes which of them applies.
  const draw = (s) => {
    const state = s.paused ? "paused" : s.connected ? "up" : "down";
    stateLine.className = `bridge-state bridge-${state}`;
    stateLine.dataset.state = state;
    stateText.textContent = t(`bridge.state.${state}`);
    const text = {
      since: s.connected_since ? fullTime(s.connected_since) : "-",
      sessions: String(s.sessions ?? 0),
      depth: t("bridge.envelopes", { count: s.outbound.depth }),
      lag: t("bridge.seconds", { count: s.outbound.lag_seconds }),
      outSeq: t("bridge.seqPair", { sent: s.outbound.last_seq, acked: s.outbound.acked_seq }),
      inSeq: String(s.inbound.applied_seq),
      counts: t("bridge.countPair", { sent: s.outbound.sent, received: s.inbound.received }),
      lastError: s.last_error ? t("bridge.errorAt", { error: s.last_error, time: fullTime(s.last_error_at) })
        : t("bridge.noError"),
    };
    for (const k of FACTS) values.get(k).textContent = text[k];
    if (paused !== s.paused) {
      const hadFocus = actions.contains(document.activeElement);
      paused = s.paused;
      clear(actions).append(
        s.paused ? control("resume", "resume", { confirm: false }) : control("pause", "pause", { danger: true }),
        control("resync", "resync"),
        h("button", { type: "button", class: "button secondary", text: t("bridge.refresh"), on: { click: () => load() } }));
      if (hadFocus) actions.firstElementChild.focus();
    }
  };

  const load = async () => {
    try {
      draw(await get("/api/admin/bridge"));
      return true;
    } catch (err) {
      if (err.code === "bridge_disabled") {
        clear(box).append(h("p", { class: "empty", id: "bridge-state", dataset: { state: "disabled" },
          text: t("bridge.disabled") }));
        return false;
      }
      result(out, err.userMessage, false);
      return true;
    }
  };
  box.append(stateLine, h("dl", { class: "counts bridge-facts" }, FACTS.map((k) => [h("dt", { text: t(`bridge.fact.${k}`) }),
    values.get(k)])), actions, h("p", { class: "hint", text: t("bridge.autoRefresh") }));
  if (!(await load())) return;
  // Refresh while the screen is shown; the interval ends once the section is replaced.
  timer = setInterval(() => {
    if (!box.isConnected) {
      clearInterval(timer);
      return;
    }
    load();
  }, 5000);
}
