// File upload for guests and staff phones (issue 3). The file goes to the relay, which has it rebuilt by the
// sanitizer; only the rebuilt file goes on to the organisation. A refusal comes back with its reason in
// やさしい日本語 (and English) and is shown as text (never HTML). The pending copy arrives over app.js's WebSocket.
import { errorText, setText, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
let checked = false;

function status(key, vars, refused = false) {
  setText($("file-status"), key, vars);
  $("file-status").className = refused ? "state refused" : "state";
}

function alertText(text) {
  $("alert").textContent = text || "";
  $("alert").hidden = !text;
}

function newId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Offer the button only when the relay has a sanitizer (asked once the chat is visible, i.e. logged in).
async function offer() {
  if (checked || $("room").hidden) return;
  checked = true;
  try {
    const resp = await fetch("/api/uploads", { credentials: "same-origin" });
    const data = resp.ok ? await resp.json() : { enabled: false };
    $("file-form").hidden = !data.enabled;
    // Without a sanitizer the page says files cannot be sent; with one, the file form below says how.
    if (data.enabled) setText(document.querySelector('label[for="post-body"]'), "composer.labelWithFiles");
  } catch (e) {
    checked = false;
  }
}
new MutationObserver(offer).observe($("room"), { attributes: true, attributeFilter: ["hidden", "data-room-id"] });

$("file-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  alertText("");
  const roomId = $("room").dataset.roomId;
  const file = $("file-input").files[0];
  if (!file || !roomId) { status("file.choose", null, true); return; }
  $("file-send").disabled = true;
  status("file.working");
  try {
    const me = await fetch("/api/me", { credentials: "same-origin" }).then((r) => r.json());
    const form = new FormData();
    form.append("client_msg_id", newId());
    form.append("file", file, file.name);
    const resp = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/files`, {
      method: "POST", body: form, credentials: "same-origin", headers: { "X-CSRF-Token": me.csrf_token || "" } });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const reason = errorText(data.error, "file.refusedFallback");
      status("file.refused", { reason }, true);
      alertText(t("file.refusedAlert", { reason }));
      return;
    }
    if (data.file && data.file.removed) status("file.sentRemoved", { name: data.file.name, removed: data.file.removed });
    else status("file.sent", { name: data.file.name });
    $("file-input").value = "";
  } catch (e) {
    status("error.network", null, true);
  } finally {
    $("file-send").disabled = false;
  }
});
