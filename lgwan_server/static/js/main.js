// Entry point: load the catalogue, find out who we are, then show login, TOTP enrolment or the app.
import { get, onUnauthenticated, setCsrf } from "./api.js";
import { setLang, t } from "./i18n.js";
import { mountAnnouncers } from "./notify.js";
import { loadPrefs } from "./prefs.js";
import { startApp, stopApp } from "./views/app.js";
import { showEnrolment, showLogin } from "./views/login.js";

const root = document.getElementById("app");
let booting = false;

async function boot(notice) {
  if (booting) return;
  booting = true;
  try {
    stopApp();
    let me = null;
    try {
      me = await get("/api/auth/me", { quiet401: true });
    } catch {
      me = null;
    }
    document.title = t("app.title");
    if (!me) {
      showLogin(root, { notice, onDone: () => boot() });
      return;
    }
    setCsrf(me.csrf_token);
    if (me.mfa_pending) {
      showEnrolment(root, { onDone: () => boot(), onLogout: () => boot() });
      return;
    }
    await startApp(root, me, { onLogout: (message) => boot(message) });
  } finally {
    booting = false;
  }
}

onUnauthenticated(() => boot(t("login.sessionEnded")));

(async () => {
  await setLang(loadPrefs().lang);
  mountAnnouncers(document.body);
  await boot();
})();
