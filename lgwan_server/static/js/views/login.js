// Login (ID, password, TOTP when enrolled) and first-time TOTP enrolment with a locally made QR code.
import { post, setCsrf } from "../api.js";
import { clear, h } from "../dom.js";
import { LANGS, getLang, setLang, t } from "../i18n.js";
import { savePrefs } from "../prefs.js";

function languageSwitch(onChange) {
  const select = h("select", { id: "lang-select", class: "input input-small",
    on: { change: async () => { savePrefs({ lang: select.value }); await setLang(select.value); onChange(); } } },
  LANGS.map((code) => h("option", { value: code, selected: code === getLang(), text: t(`lang.${code}`) })));
  return h("div", { class: "lang-switch" }, h("label", { for: "lang-select", text: t("settings.language") }), select);
}

function card(...children) {
  return h("main", { class: "login-page", id: "main" },
    h("div", { class: "login-card" },
      h("p", { class: "login-brand" }, h("img", { src: "/static/img/icon.svg", alt: "", class: "brand-icon" }),
        h("span", { text: t("app.title") })),
      children));
}

export function showLogin(root, { notice, onDone }) {
  const render = () => {
    clear(root);
    const error = h("p", { class: "form-error", role: "alert" });
    const loginInput = h("input", { id: "login-id", name: "login", class: "input", autocomplete: "username",
      required: true, maxlength: "64", autocapitalize: "none", spellcheck: "false" });
    const password = h("input", { id: "login-password", name: "password", type: "password", class: "input",
      autocomplete: "current-password", required: true, maxlength: "256" });
    const totp = h("input", { id: "login-totp", name: "totp", class: "input", inputmode: "numeric",
      autocomplete: "one-time-code", maxlength: "6", pattern: "[0-9]{6}", "aria-describedby": "login-totp-hint" });
    const totpField = h("div", { class: "field", hidden: true },
      h("label", { for: "login-totp", text: t("login.totp") }), totp,
      h("p", { class: "hint", id: "login-totp-hint", text: t("login.totpHint") }));
    const submit = h("button", { type: "submit", class: "button primary wide", text: t("login.submit") });
    const form = h("form", { class: "form", novalidate: true, on: { submit: async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      if (!loginInput.value || !password.value) {
        error.textContent = t("login.missing");
        (loginInput.value ? password : loginInput).focus();
        return;
      }
      submit.disabled = true;
      try {
        const body = { login: loginInput.value.trim(), password: password.value };
        if (!totpField.hidden && totp.value) body.totp = totp.value.trim();
        const result = await post("/api/auth/login", body, { quiet401: true });
        setCsrf(result.csrf_token);
        onDone();
      } catch (err) {
        if (err.code === "totp_required") {
          totpField.hidden = false;
          error.textContent = t("login.totpNeeded");
          totp.focus();
        } else {
          error.textContent = err.userMessage;
          if (err.code === "totp_invalid") { totp.value = ""; totp.focus(); } else password.focus();
        }
      } finally {
        submit.disabled = false;
      }
    } } },
    h("div", { class: "field" }, h("label", { for: "login-id", text: t("login.id") }), loginInput),
    h("div", { class: "field" }, h("label", { for: "login-password", text: t("login.password") }), password),
    totpField, error, submit);
    root.append(card(
      h("h1", { text: t("login.heading") }),
      notice ? h("p", { class: "notice", role: "status", text: notice }) : null,
      form,
      languageSwitch(render)));
    loginInput.focus();
  };
  render();
}

/** segno's inline SVG has no xmlns (fine inside HTML, not as an image): add it, then show it as an <img>. */
function qrImage(svgText) {
  let text = String(svgText || "");
  if (!text.startsWith("<svg")) return null;
  if (!/^<svg[^>]*\sxmlns=/.test(text)) text = text.replace(/^<svg/, `<svg xmlns="${"http://www.w3.org/2000/svg"}"`);
  // An SVG loaded through <img> cannot run script or touch this document, whatever it contains.
  return h("img", { class: "qr", src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`,
    alt: t("enrol.qrAlt"), width: "180", height: "180" });
}

export function showEnrolment(root, { onDone, onLogout }) {
  clear(root);
  const error = h("p", { class: "form-error", role: "alert" });
  const qrBox = h("div", { class: "qr-box", "aria-busy": "true" }, h("p", { text: t("common.loading") }));
  const code = h("input", { id: "enrol-code", class: "input", inputmode: "numeric", autocomplete: "one-time-code",
    maxlength: "6", pattern: "[0-9]{6}", required: true });
  const submit = h("button", { type: "submit", class: "button primary", text: t("enrol.confirm") });
  const form = h("form", { class: "form", novalidate: true, on: { submit: async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      await post("/api/auth/totp/confirm", { code: code.value.trim() });
      onDone();
    } catch (err) {
      error.textContent = err.code === "invalid_request" ? t("enrol.codeFormat") : err.userMessage;
      code.select();
      code.focus();
    } finally {
      submit.disabled = false;
    }
  } } },
  h("div", { class: "field" }, h("label", { for: "enrol-code", text: t("enrol.code") }), code), error, submit);
  const logout = h("button", { type: "button", class: "button link", text: t("nav.logout"), on: { click: async () => {
    try { await post("/api/auth/logout", {}); } catch { /* already gone */ }
    onLogout();
  } } });
  root.append(card(
    h("h1", { text: t("enrol.heading") }),
    h("p", { text: t("enrol.intro") }),
    h("ol", { class: "steps" }, h("li", { text: t("enrol.step1") }), h("li", { text: t("enrol.step2") }),
      h("li", { text: t("enrol.step3") })),
    qrBox, form, logout));
  (async () => {
    try {
      const data = await post("/api/auth/totp/begin", {});
      clear(qrBox);
      qrBox.removeAttribute("aria-busy");
      const grouped = String(data.secret).replace(/(.{4})/g, "$1 ").trim();
      qrBox.append(qrImage(data.qr_svg) || h("p", { text: t("enrol.noQr") }),
        h("p", { class: "secret" }, h("span", { text: t("enrol.secret") }), " ",
          h("code", { id: "totp-secret", "data-secret": data.secret, text: grouped })));
      code.focus();
    } catch (err) {
      clear(qrBox);
      qrBox.append(h("p", { class: "form-error", role: "alert", text: err.userMessage }));
    }
  })();
}
