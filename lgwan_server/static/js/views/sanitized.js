// Files from guests and staff phones (issue 3): the 「無害化済み」 badge and, one click away, the sanitizer's
// report — what was removed, the hashes, the fingerprint of the sanitizer key that signed the verdict, and
// what this server re-checked before the file was shown. Everything goes in as text (dom.js), never HTML.
import { get } from "../api.js";
import { openDialog } from "../dialog.js";
import { h, plain } from "../dom.js";
import { fileSize, fullTime } from "../format.js";
import { getLang, t } from "../i18n.js";

/** The badge next to a sanitized attachment; a button that opens the report. */
export function sanitizedBadge(a) {
  return h("button", { type: "button", class: "tag sanitized-tag", "aria-haspopup": "dialog",
    title: t("sanitized.open"), "aria-label": t("sanitized.openLabel", { name: plain(a.filename) }),
    text: t("msg.sanitized"), on: { click: () => showReport(a) } });
}

function fact(label, value, mono = false) {
  return [h("dt", { text: label }), h("dd", { class: mono ? "hash" : null, text: value })];
}

export async function showReport(a) {
  let data;
  try {
    data = await get(`/api/files/${encodeURIComponent(a.id)}/report`);
  } catch (err) {
    openDialog({ title: t("sanitized.title"), content: h("p", { class: "form-error", role: "alert",
      text: err.userMessage }) });
    return;
  }
  const report = data.report;
  const v = data.verdict;
  const en = getLang() === "en";
  const removed = report.removed.length
    ? h("ul", { class: "sanitized-removed" }, report.removed.map((item) => h("li", {
      text: t("sanitized.removedItem", { label: en ? item.en : item.ja, count: item.count }) })))
    : h("p", { text: t("sanitized.nothingRemoved") });
  const { body } = openDialog({
    title: t("sanitized.title"),
    className: "sanitized-dialog",
    content: [
      h("p", { text: t("sanitized.intro") }),
      h("h3", { text: t("sanitized.removed") }),
      removed,
      h("h3", { text: t("sanitized.checks") }),
      h("p", { text: t("sanitized.checksText") }),
      h("dl", { class: "sanitized-facts" },
        fact(t("sanitized.file"), data.filename),
        fact(t("sanitized.type"), `${v.output_type} · ${fileSize(v.output_bytes)}`),
        fact(t("sanitized.original"), `${report.input.name} · ${fileSize(v.input_bytes)}`),
        fact(t("sanitized.inputSha"), v.input_sha256, true),
        fact(t("sanitized.outputSha"), v.output_sha256, true),
        fact(t("sanitized.key"), v.fingerprint || v.key_id, true),
        fact(t("sanitized.signedAt"), fullTime(v.signed_at)),
        fact(t("sanitized.checkedAt"), fullTime(data.lgwan_check.checked_at))),
    ],
  });
  // The report can be longer than the screen: its scrolling body must be reachable by keyboard.
  body.setAttribute("tabindex", "0");
}
