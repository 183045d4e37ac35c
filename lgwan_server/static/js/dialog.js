// Modal dialogs on the native <dialog> element: focus moves in, Esc closes, focus returns after.
import { h } from "./dom.js";
import { t } from "./i18n.js";

/**
 * openDialog({title, content, actions, onClose, className}) → {dialog, close, body}
 * content: a node or array of nodes; actions: extra buttons shown before the close button.
 */
export function openDialog({ title, content, actions = [], onClose, className = "", closeLabel }) {
  const opener = document.activeElement;
  const titleId = `dlg-title-${Math.random().toString(36).slice(2, 8)}`;
  const body = h("div", { class: "dialog-body" }, content);
  const closeButton = h("button", { type: "button", class: "button secondary", text: closeLabel || t("common.close") });
  const dialog = h("dialog", { class: `dialog ${className}`, "aria-labelledby": titleId },
    h("div", { class: "dialog-header" }, h("h2", { id: titleId, text: title })),
    body,
    h("div", { class: "dialog-actions" }, actions, closeButton));
  const close = () => {
    if (dialog.open) dialog.close();
  };
  closeButton.addEventListener("click", close);
  dialog.addEventListener("close", () => {
    dialog.remove();
    onClose?.();
    if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, close, body };
}

/** Ask to confirm; resolves to the reason text (when asked for) or true, or null if cancelled. */
export function confirmDialog({ title, message, confirmLabel, askReason = false, danger = false }) {
  return new Promise((resolve) => {
    let result = null;
    const reasonId = `reason-${Math.random().toString(36).slice(2, 8)}`;
    const reason = askReason ? h("input", { id: reasonId, type: "text", maxlength: "200", class: "input" }) : null;
    const ok = h("button", { type: "button", class: danger ? "button danger" : "button primary", text: confirmLabel });
    const { close } = openDialog({
      title,
      content: [h("p", { text: message }),
        askReason ? h("div", { class: "field" }, h("label", { for: reasonId, text: t("common.reason") }), reason) : null],
      actions: [ok],
      closeLabel: t("common.cancel"),
      onClose: () => resolve(result),
    });
    ok.addEventListener("click", () => {
      result = askReason ? reason.value : true;
      close();
    });
  });
}
